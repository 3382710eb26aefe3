import { IconButton, Tooltip } from '@mui/material'
import DarkModeIcon from '@mui/icons-material/DarkModeOutlined'
import LightModeIcon from '@mui/icons-material/LightModeOutlined'
import { useContext } from 'react'
import { ThemeControlContext } from './context'

export function ThemeToggle({ color = 'inherit' }: { color?: 'inherit' | 'default' }) {
  const { mode, toggle } = useContext(ThemeControlContext)
  return (
    <Tooltip title={mode === 'dark' ? 'Light mode' : 'Dark mode'}>
      <IconButton aria-label="Toggle dark mode" aria-pressed={mode === 'dark'} onClick={toggle} color={color}>
        {mode === 'dark' ? <LightModeIcon /> : <DarkModeIcon />}
      </IconButton>
    </Tooltip>
  )
}
