import { Button, type ButtonProps } from '@mui/material'
import { useRef, type ReactNode } from 'react'
import { visuallyHidden } from './VisuallyHidden'

/**
 * A button that opens the file picker. The <input type=file> carries the
 * accessible label (tests and assistive tech can set files on it directly);
 * the visible button is what keyboard and pointer users press.
 */
export function FileButton({
  inputLabel, accept, multiple, onFiles, children, ...button
}: { inputLabel: string; accept?: string; multiple?: boolean; onFiles: (files: File[]) => void; children: ReactNode } & Omit<ButtonProps, 'onClick'>) {
  const input = useRef<HTMLInputElement>(null)
  return (
    <>
      <input
        ref={input}
        type="file"
        aria-label={inputLabel}
        accept={accept}
        multiple={multiple}
        tabIndex={-1}
        style={visuallyHidden}
        onChange={(e) => {
          const files = [...(e.target.files ?? [])]
          e.target.value = ''
          if (files.length) onFiles(files)
        }}
      />
      <Button {...button} onClick={() => input.current?.click()}>
        {children}
      </Button>
    </>
  )
}
