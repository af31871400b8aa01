"""bertxml_lib — the library behind the BERT-XML reproducibility notebooks.

One module per concern; each notebook `notebooks/NN_stage.ipynb` is a thin caller of one module:
01 `cohort`, 02 `tokenizer`, 03 `pretrain`, 04 `finetune`, 05 `baselines`, 06 `analysis`, 07 `attention`.
"""

import warnings

__version__ = "0.1.0"

# transformers imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns "IProgress not found" into
# every executed notebook; the suite's own bars are plain tqdm written to the console and a log (core.progress).
warnings.filterwarnings("ignore", message="IProgress not found")
