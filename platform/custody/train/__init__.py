"""Training: tokenizer, model, verified data, the loop, checkpoints, data parallelism, and carbon.

    tokenizer    byte-level BPE (Hugging Face tokenizers), identified by the digest of its JSON
    model        a GPT decoder in one module (nanoGPT style), with transfer-learning surgery
    data         token streams from registered datasets, every shard's bytes verified as read
    loop         TrainConfig, train(), Hooks for the ledger, evaluation, resume
    checkpoint   atomic, digest-named checkpoints; loading refuses bytes that were not recorded
    distributed  torchrun data parallelism (gloo on CPUs, NCCL on GPUs)
    carbon       CodeCarbon offline: energy, CO2e and water of any block of work

Modules are imported one by one (`from custody.train.loop import train`): importing this package
does not import torch.
"""
