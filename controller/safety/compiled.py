"""How the watchdog's kernels are compiled: ``@kernel``.

The same switches as the detection kernels (``controller.detect.jit``, which the safety
package may not import): ``numba.njit(cache=True)`` without numba's runtime (NRT). The
kernels never allocate; limits, state, log and command rows are arrays the caller owns,
so a compiled loop can call them at every sample without reference counting, and a
kernel that tried to allocate would fail to compile, loudly.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

#: The arrays the kernels work on (limits, state, log, command rows).
Floats = NDArray[np.float64]

# ``_nrt`` is numba's own switch for the runtime; the type stubs do not list it.
kernel = numba.njit(cache=True, _nrt=False)  # type: ignore[call-overload]
