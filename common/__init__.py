"""Small utilities every room uses, each implemented once: file hashing and atomic
writes (``common.files``), did-you-mean suggestions and boolean environment flags
(``common.names``). Nothing here imports another lcmbench package."""
