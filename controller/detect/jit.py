"""How the detection kernels are compiled: ``@kernel``.

Every per-sample function of the detectors is ``numba.njit(cache=True)`` and, on top,
compiled without numba's runtime (NRT). The kernels never allocate: state, parameters
and outputs are arrays the caller owns. With the runtime on, numba reference-counts
those arrays at every call between kernel functions, with atomic operations that cost
about 100 ns per sample, twenty times the detection work itself. Without it there is no
reference counting at all; a kernel that tried to allocate would fail to compile, loudly.
"""

from __future__ import annotations

import numba

# ``_nrt`` is numba's own switch for the runtime (used by its test suite); the type
# stubs do not list it.
kernel = numba.njit(cache=True, _nrt=False)  # type: ignore[call-overload]
