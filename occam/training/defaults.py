"""The defaults of ``Cluster.fit``'s options, in one place.

Both :meth:`occam.cluster.Cluster.fit` (the signature users see) and :func:`occam.training.fit.fit` (the
implementation) take their defaults from here. This module imports nothing, so ``occam.cluster`` can
use it without loading the training stack.
"""

EPOCHS = 1
BATCH_SIZE = 32
RESUME = False
SCALE_LR = True
PROGRESS = True
SHUFFLE = True
