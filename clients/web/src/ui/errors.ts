/** A human sentence for anything thrown: the engine's and the API client's errors already are. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error && err.message.trim() !== '') return err.message
  if (typeof err === 'string' && err.trim() !== '') return err
  return 'Something went wrong. Try again.'
}
