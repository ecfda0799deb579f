"""RapidIn (Lin et al., ACL 2024, arXiv 2405.11724): which training examples influenced a prediction.

RapidIn compresses every per-example gradient into a short random sketch (RapidGrad), caches the
training set's sketches once, and scores influence as inner products of sketches. The modules:
  rapidgrad  the seeded linear sketch for several K at once, its header, the check that refuses a
             sketch built with another seed, K, λ or dimension, and the per-tensor normalisation
  gradients  per-example loss gradients (batch of 1, the harness's objective), query targets
             (the model's predicted candidate, or gold)
  cache      the caching stage: streamed sketching, one atomic float16 safetensors file with its header
  retrieve   the retrieval stage: streamed inner products, top-k helpful and harmful, the exact baseline
Not yet: the Snakemake rules and CLI, influence on a trained run's checkpoint, token-wise influence and
the planted-trigger validation (issue 15). Nothing here is imported at Snakefile parse time.
"""
