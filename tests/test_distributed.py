"""Negatives gathered across 2 CPU processes (gloo, torch.multiprocessing), one thread each.

- toy embeddings with a_j = p_j and orthogonal negatives: the MNR loss is ~0 on both ranks
  (labels ignoring the per-device layout would give about the scale, 20);
- tiny BERT, dropout off: one step on 2 processes x 4 rows with gathering gives the loss and
  every parameter gradient of 1 process x 8 rows (1e-5), plainly and with the gradient cache;
- the loop on 2 processes: every row once per epoch over both processes, new order per epoch.
"""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from sbert_triplet.config import build_train_config
from sbert_triplet.training.objective import build_objective

WORLD = 2
ADJ = "red blue green big small old young happy sad fast slow good bad new".split()
NOUN = "cat dog man woman child boy girl person".split()
ROWS = [{"anchor": f"a {ADJ[i % 14]} {NOUN[i % 8]} sits", "positive": f"the {ADJ[i % 14]} {NOUN[i % 8]} is sitting",
         "negative": f"{ADJ[(i + 5) % 14]} {NOUN[(i + 3) % 8]} runs fast"} for i in range(16)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args) -> None:
    port = _free_port()
    mp.spawn(worker, args=(port, *args), nprocs=WORLD, join=True)


def _init(rank: int, port: int) -> None:
    """The environment torchrun gives each process (no ACCELERATE_USE_CPU); one thread."""
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_WORLD_SIZE": str(WORLD),
                       "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})


def _config(**extra):
    return build_train_config({"train": "unused", "output_dir": "unused", "loss": "mnr", "gather_across_devices": True,
                               **extra})


def _mnr_objective():
    return build_objective(_config(), ["anchor", "positive", "negative_1"])


# ----------------------------------------------------------------------------- toy embeddings


def _toy_check(rank: int) -> dict:
    """2 triplets on this process of 4: a_j = p_j = e_j, negatives e_{4+j}, orthogonal to every anchor."""
    from sbert_triplet.training.distributed import gather_batch, gather_embeddings, gathered_loss

    eye = torch.eye(8)
    rows = [2 * rank, 2 * rank + 1]
    batch = {"texts": {"anchor": [f"anchor {j}" for j in rows], "positive": [f"positive {j}" for j in rows],
                       "negative_1": [f"negative {j}" for j in rows]}}
    anchor = eye[rows].clone().requires_grad_()
    embeddings = {"anchor": anchor, "positive": eye[rows], "negative_1": eye[[4 + j for j in rows]]}
    objective = _mnr_objective()
    loss = gathered_loss(objective.loss_from_embeddings(gather_batch(batch)))(embeddings)
    loss.backward()
    with torch.no_grad():  # what labels arange(B) on every rank (one global block assumed) would give
        everyone = gather_embeddings(embeddings)  # {column: (4, 8)}
        candidates = torch.cat([everyone["positive"], everyone["negative_1"]])  # (8, 8)
        logits = 20.0 * embeddings["anchor"] @ candidates.T  # (2, 8): unit vectors, so cosine
        wrong = torch.nn.functional.cross_entropy(logits, torch.arange(2))
    return {"loss": loss.item(), "wrong": wrong.item(), "grad_finite": bool(torch.isfinite(anchor.grad).all())}


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory, tiny_model_dir):
    """One spawn of 2 processes for the toy check and the tiny-model step (process start-up is the slow part)."""
    out = tmp_path_factory.mktemp("two_processes")
    _spawn(_tiny_worker, str(tiny_model_dir), str(out))
    return [torch.load(out / f"tiny_{r}.pt") for r in range(WORLD)]


def test_toy_gathered_mnr_loss_is_zero_on_both_ranks(two_process_results):
    results = [r["toy"] for r in two_process_results]
    for r in results:
        assert r["loss"] < 1e-6 and r["grad_finite"]
    assert max(r["wrong"] for r in results) > 15  # what wrong block labels give: about the scale, 20


# ----------------------------------------------------------------------------- tiny BERT: 2 x 4 == 1 x 8


def _features(model, rows):
    texts = {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows],
             "negative_1": [r["negative"] for r in rows]}
    return {"texts": texts, "features": {c: model.preprocess(t) for c, t in texts.items()}}


def _step(model, rows, accelerator, mini_batch_size):
    from sbert_triplet.training.distributed import gather_batch
    from sbert_triplet.training.step import backward_batch

    batch = _features(accelerator.unwrap_model(model), rows)
    objective = _mnr_objective()
    pool = gather_batch(batch) if accelerator is not None and accelerator.num_processes > 1 else None
    model.zero_grad(set_to_none=True)
    loss = backward_batch(model, objective, batch, accelerator, mini_batch_size, pool=pool)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), {n.removeprefix("module."): g for n, g in grads.items()}, objective.stats(pool or batch)


def _tiny_worker(rank: int, port: int, model_dir: str, out: str) -> None:
    _init(rank, port)
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.training.distributed import make_accelerator

    accelerator = make_accelerator(_config())  # DDP over gloo, as train() makes it
    model = accelerator.prepare(SentenceTransformer(model_dir, device="cpu").eval())  # dropout off: comparable
    mine = ROWS[4 * rank:4 * rank + 4]
    results = {m: _step(model, mine, accelerator, m) for m in (None, 2)}  # plain, and the gradient cache
    torch.save({"toy": _toy_check(rank), "steps": results}, os.path.join(out, f"tiny_{rank}.pt"))
    accelerator.wait_for_everyone()


def test_two_processes_of_4_rows_equal_one_process_of_8(two_process_results, tiny_model):
    from sbert_triplet.training.distributed import make_accelerator

    model = tiny_model.eval()
    single = make_accelerator(_config())
    for rank, results in enumerate(two_process_results):
        for mini_batch_size, (loss, grads, stats) in results["steps"].items():
            ref_loss, ref_grads, ref_stats = _step(model, ROWS[:8], single, mini_batch_size)
            assert abs(loss - ref_loss) < 1e-5, (rank, mini_batch_size)
            assert grads.keys() == ref_grads.keys()
            worst = max((grads[n] - ref_grads[n]).abs().max().item() for n in grads)
            assert worst < 1e-5, (rank, mini_batch_size, worst)
            assert stats["negatives_per_anchor"] == ref_stats["negatives_per_anchor"] == 15  # 8 * 2 - 1


# ----------------------------------------------------------------------------- the loop on 2 processes


def _loop_worker(rank: int, port: int, model_dir: str, data: str, out: str) -> None:
    _init(rank, port)
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.training import loop

    seen: list[list[str]] = []
    original = loop.backward_batch

    def recording(model, objective, batch, *args, **kwargs):
        seen.append(list(batch["texts"]["anchor"]))
        return original(model, objective, batch, *args, **kwargs)

    loop.backward_batch = recording
    cfg = build_train_config({"train": data, "output_dir": out, "loss": "mnr", "batch_size": 2, "epochs": 2,
                              "gather_across_devices": True, "log_steps": 1, "eval_before": False, "save_steps": 4})
    metrics = loop.train(cfg, model=SentenceTransformer(model_dir, device="cpu"), evaluators=[])
    with open(os.path.join(out, f"seen_{rank}.json"), "w") as f:
        json.dump({"seen": seen, "train": metrics["train"]}, f)


def test_loop_on_two_processes_sees_every_row_once_per_epoch(tmp_path, tiny_model_dir):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "out"
    _spawn(_loop_worker, str(tiny_model_dir), str(data), str(out))
    runs = [json.loads((out / f"seen_{r}.json").read_text()) for r in range(WORLD)]
    assert all(len(run["seen"]) == 8 for run in runs)  # 16 rows / (2 processes x 2 rows) = 4 steps per epoch
    anchors = sorted(r["anchor"] for r in ROWS)
    epochs = [[a for run in runs for batch in run["seen"][e * 4:(e + 1) * 4] for a in batch] for e in range(2)]
    assert sorted(epochs[0]) == anchors and sorted(epochs[1]) == anchors
    assert epochs[0] != epochs[1]  # set_epoch reached the sampler under Accelerate's sharding
    assert runs[0]["train"]["steps"] == 8 and runs[0]["train"]["examples"] == 32
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    start = log[0]
    assert (start["processes"], start["global_batch_size"], start["in_batch_pool"]) == (2, 4, 4)
    train_records = [r for r in log if r["event"] == "train"]
    assert all(r["negatives_per_anchor"] == 7 for r in train_records)  # 4 positives + 4 negatives, minus its own
    assert (out / "checkpoints" / "checkpoint-8" / "random_states_1.pkl").is_file()
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(out), device="cpu")  # the main process saved a loadable model
