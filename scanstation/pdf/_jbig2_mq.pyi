import numpy as np

# The C coder of scanstation/pdf/_jbig2_mq.c; it takes any contiguous bytes-like object (here: a uint8 array).
def code(pixels: np.ndarray, height: int, width: int, /) -> bytes | None: ...
