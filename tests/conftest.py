"""Session-wide test settings.

torch and the BLAS/OpenMP pools run on one thread for the whole session. The tests are tiny, so threads only add
overhead on a shared machine; and switching MKL's thread count back and forth inside one
process can leave its LAPACK thread team spinning forever in a later batched solve.
"""

import torch
from threadpoolctl import threadpool_limits

torch.set_num_threads(1)
threadpool_limits(limits=1)
