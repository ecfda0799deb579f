"""RapidIn (Lin et al., ACL 2024, arXiv 2405.11724): which training examples influenced a prediction.

RapidIn compresses every per-example gradient into a short random sketch (RapidGrad), caches the
training set's sketches once, and scores influence as inner products of sketches. The modules:
  rapidgrad  the seeded linear sketch for several K at once, its header, the check that refuses a
             sketch built with another seed, K, λ or dimension, and the per-tensor normalisation
  gradients  per-example loss gradients (batch of 1, the harness's objective), query targets
             (the model's predicted candidate, or gold)
  cache      the caching stage: streamed sketching, one atomic float16 safetensors file with its header
  retrieve   the retrieval stage: streamed inner products, top-k helpful and harmful, the exact baseline
  explain    RapidIn on a run: the reported checkpoint (replay, saved weights or the base), the run's training
             examples, the queries (triggered ones for a planted trigger), cache_stage and retrieve_stage
  report     the planted-trigger validation tables and figure (torch-free)
  rephrased  rephrased vs original training examples' influence for an OAT-Rephrase run (torch-free)
  commands   the CLI the rules call (rules/influence.smk)
Not yet: token-wise influence (issue 15 part 4). Nothing here is imported at Snakefile parse time.
"""
