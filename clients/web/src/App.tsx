import { useMemo } from 'react'
import { BrowserRouter, Route, Routes } from 'react-router-dom'
import { AppBar, Box, Container, CssBaseline, ThemeProvider, Toolbar, Typography, createTheme, useMediaQuery } from '@mui/material'

function Home() {
  return (
    <Container maxWidth="sm" sx={{ py: 6 }}>
      <Typography variant="h4" component="h1" gutterBottom>
        PrivateLine
      </Typography>
      <Typography color="text.secondary">End-to-end encrypted messaging. Sign-in is coming next.</Typography>
    </Container>
  )
}

/** The app shell: theme following the system, navigation bar, routes. */
export function App() {
  const dark = useMediaQuery('(prefers-color-scheme: dark)')
  const theme = useMemo(() => createTheme({ palette: { mode: dark ? 'dark' : 'light' } }), [dark])
  return (
    <ThemeProvider theme={theme}>
      <CssBaseline />
      <BrowserRouter>
        <AppBar position="static" elevation={0}>
          <Toolbar>
            <Typography variant="h6" component="div">
              PrivateLine
            </Typography>
          </Toolbar>
        </AppBar>
        <Box component="main">
          <Routes>
            <Route path="*" element={<Home />} />
          </Routes>
        </Box>
      </BrowserRouter>
    </ThemeProvider>
  )
}
