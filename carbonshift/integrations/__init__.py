"""Training-loop callbacks: :mod:`carbonshift.integrations.hf` (Hugging Face ``Trainer``) and
:mod:`carbonshift.integrations.lightning` (PyTorch Lightning). Each module imports its
library only when imported itself."""
