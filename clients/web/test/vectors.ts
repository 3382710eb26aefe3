// Loads spec/vectors and counts what the tests check, so that a skipped
// file or case fails the run.
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { E2EEError, type ErrorCode } from '../src/crypto/errors'

export const VECTORS = fileURLToPath(new URL('../../../spec/vectors/', import.meta.url))

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Case = Record<string, any> & { name: string; result: 'valid' | 'invalid'; error?: ErrorCode }

export function load(file: string): { cases: Case[] } {
  return JSON.parse(readFileSync(VECTORS + file, 'utf8'))
}

export function generatedFiles(): string[] {
  return readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort()
}

export function publishedFiles(): string[] {
  return readdirSync(VECTORS + 'published').filter((f) => f.endsWith('.json')).sort()
}

/** checked[file] = number of cases checked */
export const checked = new Map<string, number>()

export function count(file: string, n = 1) {
  checked.set(file, (checked.get(file) ?? 0) + n)
}

export async function expectRefusal(p: Promise<unknown> | (() => unknown), code: ErrorCode | undefined, name: string) {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err, `${name}: expected refusal ${code}`).toBeInstanceOf(E2EEError)
  expect((err as E2EEError).code, `${name}: ${(err as Error).message}`).toBe(code)
}
