"""Training on veRL (Ray, FSDP/Megatron, vLLM/SGLang): the agent loop that plays envtune episodes,
the per-stage parquet data, the rendered veRL configuration and the engine that trains the
curriculum's stages with it.

Needs the `verl` extra (`pip install 'envtune[verl]'`); importing this package itself does not import veRL.
"""
