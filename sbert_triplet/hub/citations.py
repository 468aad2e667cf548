"""BibTeX of the papers behind a run: Sentence-BERT, the loss, gradient caching, mining.

:func:`citations_for` picks the entries from the resolved ``train_config.json`` (and the
mining report when the training data came from hard-negative mining); the model card
prints them in its "Citation" section.
"""

from __future__ import annotations

from typing import Any

BIBTEX: dict[str, str] = {
    "sbert": """@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}""",
    "facenet": """@inproceedings{schroff2015facenet,
    title = {FaceNet: A Unified Embedding for Face Recognition and Clustering},
    author = {Schroff, Florian and Kalenichenko, Dmitry and Philbin, James},
    booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
    pages = {815--823},
    year = {2015},
    eprint = {1503.03832},
    archivePrefix = {arXiv},
}""",
    "hermans": """@misc{hermans2017defense,
    title = {In Defense of the Triplet Loss for Person Re-Identification},
    author = {Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year = {2017},
    eprint = {1703.07737},
    archivePrefix = {arXiv},
    primaryClass = {cs.CV},
}""",
    "balntas": """@inproceedings{balntas2016learning,
    title = {Learning local feature descriptors with triplets and shallow convolutional neural networks},
    author = {Balntas, Vassileios and Riba, Edgar and Ponsa, Daniel and Mikolajczyk, Krystian},
    booktitle = {Proceedings of the British Machine Vision Conference (BMVC)},
    year = {2016},
}""",
    "henderson": """@misc{henderson2017efficient,
    title = {Efficient Natural Language Response Suggestion for Smart Reply},
    author = {Matthew Henderson and Rami Al-Rfou and Brian Strope and Yun-hsuan Sung and Laszlo Lukacs and Ruiqi Guo and Sanjiv Kumar and Balint Miklos and Ray Kurzweil},
    year = {2017},
    eprint = {1705.00652},
    archivePrefix = {arXiv},
    primaryClass = {cs.CL},
}""",
    "infonce": """@misc{oord2018representation,
    title = {Representation Learning with Contrastive Predictive Coding},
    author = {Aaron van den Oord and Yazhe Li and Oriol Vinyals},
    year = {2018},
    eprint = {1807.03748},
    archivePrefix = {arXiv},
    primaryClass = {cs.LG},
}""",
    "yang": """@inproceedings{yang2019improving,
    title = {Improving Multilingual Sentence Embedding using Bi-directional Dual Encoder with Additive Margin Softmax},
    author = {Yinfei Yang and Gustavo Hernandez Abrego and Steve Yuan and Mandy Guo and Qinlan Shen and Daniel Cer and Yun-Hsuan Sung and Brian Strope and Ray Kurzweil},
    booktitle = {Proceedings of the Twenty-Eighth International Joint Conference on Artificial Intelligence (IJCAI)},
    year = {2019},
    eprint = {1902.08564},
    archivePrefix = {arXiv},
}""",
    "ladder": """@inproceedings{zhou2020ladder,
    title = {Ladder Loss for Coherent Visual-Semantic Embedding},
    author = {Mo Zhou and Zhenxing Niu and Le Wang and Zhanning Gao and Qilin Zhang and Gang Hua},
    booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
    year = {2020},
    eprint = {1911.07528},
    archivePrefix = {arXiv},
}""",
    "gradcache": """@misc{gao2021scaling,
    title = {Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author = {Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    year = {2021},
    eprint = {2101.06983},
    archivePrefix = {arXiv},
    primaryClass = {cs.LG},
}""",
    "nv-retriever": """@misc{moreira2024nvretriever,
    title = {NV-Retriever: Improving text embedding models with effective hard-negative mining},
    author = {Gabriel de Souza P. Moreira and Radek Osmulski and Mengyao Xu and Ronay Ak and Benedikt Schifferer and Even Oldridge},
    year = {2024},
    eprint = {2407.15831},
    archivePrefix = {arXiv},
    primaryClass = {cs.IR},
}""",
}

# The papers behind each loss (keys of BIBTEX), in the order they are cited.
LOSS_PAPERS: dict[str, tuple[str, ...]] = {
    "triplet": ("facenet",),
    "batch-all": ("hermans",),
    "batch-hard": ("hermans",),
    "batch-semi-hard": ("facenet", "hermans"),
    "batch-hard-soft-margin": ("hermans",),
    "mnr": ("henderson", "infonce"),
    "mnr-symmetric": ("henderson", "infonce", "yang"),
    "ladder": ("ladder",),
}


def citation_keys(loss: dict[str, Any], grad_cache: bool = False, mined: bool = False) -> list[str]:
    """Keys of :data:`BIBTEX` for a run, Sentence-BERT first, no repeats.

    Args:
        loss: the ``loss`` section of ``train_config.json`` (``loss``, ``swap``, ``soft_margin``).
        grad_cache: the batch was encoded with the gradient cache (Gao et al. 2021).
        mined: the training data came from positive-aware hard-negative mining (NV-Retriever).
    """
    name = str(loss.get("loss", ""))
    keys = ["sbert", *LOSS_PAPERS.get(name, ())]
    if name == "triplet" and loss.get("soft_margin"):
        keys.append("hermans")
    if name == "triplet" and loss.get("swap"):
        keys.append("balntas")
    if grad_cache:
        keys.append("gradcache")
    if mined:
        keys.append("nv-retriever")
    return list(dict.fromkeys(keys))


def citations_for(loss: dict[str, Any], grad_cache: bool = False, mined: bool = False) -> list[str]:
    """The BibTeX entries of :func:`citation_keys`, as strings."""
    return [BIBTEX[key] for key in citation_keys(loss, grad_cache, mined)]
