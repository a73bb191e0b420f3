"""Multi-step jobs composed from the end layers (training, evaluation, inference, benchmark): the
demo (:mod:`.demo`: train -> evaluate -> predict in one run dir) and the GPU check."""
