"""Models other tools can load: recorded weights exported in the Hugging Face GPT-2 layout.

gpt2.py          custody's GPT as GPT2LMHeadModel tensors and config (pure functions, no home)
export_model.py  `custody export-model`: resolve weights, write the folder, the card, record it
import_model.py  `custody import-model`: an outside GPT-2 folder as a checkpoint, source and license checked
entry_types.py   `model.exported/v1` and `model.imported/v1`: a folder's manifest digest, subject model:SHA256
"""
