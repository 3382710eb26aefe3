import { Avatar } from '@mui/material'
import GroupsIcon from '@mui/icons-material/Groups'
import { localPart } from './format'

const hues = [210, 265, 330, 20, 150, 185, 290, 45]

function hue(s: string): number {
  let h = 0
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return hues[h % hues.length]
}

/** An initial on a colour derived from the name (decorative: the name is always next to it). */
export function NameAvatar({ name, group = false, size = 40 }: { name: string; group?: boolean; size?: number }) {
  return (
    <Avatar aria-hidden sx={{ width: size, height: size, bgcolor: `hsl(${hue(name)} 55% 38%)`, color: '#fff', fontSize: size * 0.42, fontWeight: 600 }}>
      {group ? <GroupsIcon fontSize="small" /> : localPart(name).slice(0, 1).toUpperCase()}
    </Avatar>
  )
}
