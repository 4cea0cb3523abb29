"""Offline mode, the verified downloader and the prefetch manifest: everything that touches the network or checks what was fetched."""
