"""The FVD detectors' files as data: their names, where they are published, the URLs a
prefetch may download them from. Read by the network (``metrics/i3d.py``), the loader
(``metrics/detectors.py``) and prefetch, so each fact is written once."""
from __future__ import annotations

from typing import Dict

STATE_DICT_FILE = "i3d_pretrained_400.pt"
TORCHSCRIPT_FILE = "i3d_torchscript.pt"
PUBLISHED_AT = {
    STATE_DICT_FILE: (
        "the VideoGPT/TATS FVD release (e.g. https://github.com/songweige/TATS, "
        "see its README/releases for the i3d_pretrained_400.pt link) or the link in "
        "the official AnimateLCM repository's metrics README "
        "(https://github.com/G-U-N/AnimateLCM)"
    ),
    TORCHSCRIPT_FILE: (
        "StyleGAN-V's detector URL "
        "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
    ),
}

# Download URLs, by file name. A file whose publishers give no stable URL
# (i3d_pretrained_400.pt) takes one from '+preflight.urls.fvd_detector="URL"'.
DOWNLOAD_URLS: Dict[str, str] = {
    TORCHSCRIPT_FILE: "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
}
