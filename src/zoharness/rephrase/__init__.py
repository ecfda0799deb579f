"""MeZO+OAT-Rephrase's data stage (arXiv 2506.17264): an LLM rewriter, briefed on how MeZO optimizes,
rewrites each training example; an LLM judge keeps only rewrites that preserve meaning and label.

  settings.py  rewriter settings (endpoint, model, prompts, sampling, retries), checked at parse time
  prompts.py   the versioned prompt set (prompts/rephrase/<version>/) and the messages per example
  cache.py     every response on disk, keyed by (model, messages, parameters, prompt version)
  client.py    the openai client: lazy connect, probe, timeouts, retries with backoff
  server.py    llama-cpp-python's OpenAI-compatible server on loopback (the offline default)
  pipeline.py  rewrite -> local checks -> judge, in rounds; output lines and statistics
  run.py       one job: split in, rephrased jsonl + stats out
"""
