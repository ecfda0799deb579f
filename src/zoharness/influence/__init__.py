"""RapidIn (Lin et al., ACL 2024, arXiv 2405.11724): which training examples influenced a generation.

RapidIn compresses every per-example gradient into a short random sketch (RapidGrad), caches the
training set's sketches once, and scores influence as inner products of sketches. So far this package
holds only the sketch: `rapidgrad` (the seeded linear map for several K at once, its header and the
cache check that refuses a sketch built with another seed, K, λ or dimension, and RapidIn's
per-parameter-tensor normalisation). Nothing here is imported at Snakefile parse time.
"""
