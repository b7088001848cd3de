"""Offline study of best.pt selection rules on the weights of every periodic evaluation of one run.

A: best.pt as the run keeps it (the best periodic evaluation: 5 fixed games, flags first, then mean x).
B: with confirmation (eval_confirm_episodes=K): a periodic evaluation that beats best's score over all its games
   plays K more games (seeds after the periodic ones), and replaces best only if its score over all 5+K beats best's.
Then a held-out evaluation (20 games, seeds 1000..1019, as `mario-tui --eval X --episodes 20 --seed 1000 --workers 2`)
of each rule's pick. CANDIDATES_DIR holds a copy of every eval/.candidate.pt the run wrote (a watcher copied each as
it appeared, polling every 3 s); the periodic scores come from the run's training.csv.

usage: uv run python best_selection_study.py RUN_DIR CANDIDATES_DIR OUT_DIR [K] [--dry]
"""
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from mario_tui.engine.checkpoint import load_weights
from mario_tui.engine.config import RunConfig
from mario_tui.engine.evaluate import EvalOptions, evaluate


def main():
    global beats
    run, cands, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    K = int(sys.argv[4]) if len(sys.argv) > 4 and not sys.argv[4].startswith("--") else 10
    dry = "--dry" in sys.argv
    out.mkdir(parents=True, exist_ok=True)
    config = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    periodic = EvalOptions.periodic(config, seed=config.seed)
    screens = {}
    for r in csv.DictReader((run / "training.csv").open()):
        if r["eval_updates"]:
            screens[int(r["eval_updates"])] = (float(r["eval_flag_rate"]), float(r["eval_x_mean"]))
    print(f"{len(screens)} periodic evaluations; periodic options {periodic}")

    def beats(score, best):
        if best is None:
            return True
        return score[0] > best[0] if score[0] != best[0] else score[1] > best[1]

    best_a = None
    for u in sorted(screens):
        if beats(screens[u], best_a and best_a[1]):
            best_a = (u, screens[u])
    print(f"A: update {best_a[0]} screen {best_a[1]}")
    if (run / "best.pt").exists():
        b = load_weights(run / "best.pt")
        e = b["eval"]
        print(f"   the run's best.pt: update {b['counters']['updates']} eval {e['flag_rate']}, {e['x_mean']}")
    if dry:
        return

    files = {}
    for f in sorted(cands.glob("cand-*.pt")):
        try:
            files[int(load_weights(f)["counters"]["updates"])] = f
        except Exception as exc:  # noqa: BLE001
            print(f"skip {f}: {exc}")
    missing = [u for u in screens if u not in files]
    print(f"{len(files)} candidate files; periodic evaluations without one: {missing[:10]}")
    cache_path = out / "cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def score_of(u, kind, options):
        key = f"{u}:{kind}"
        if key not in cache:
            t = time.monotonic()
            report = evaluate(files[u], options)
            cache[key] = {"flag_rate": report.flag_rate, "x_mean": report.x_mean,
                          "episodes": [[e.seed, e.max_x, e.flag] for e in report.episodes], "s": time.monotonic() - t}
            cache_path.write_text(json.dumps(cache, indent=1))
            print(f"  {key}: flags {report.flag_rate:.2f} x {report.x_mean:.0f} ({cache[key]['s']:.0f} s)", flush=True)
        return cache[key]

    confirm = replace(periodic, episodes=K, seed=periodic.seed + periodic.episodes, workers=2)
    n5 = periodic.episodes
    best_b, confirmations, log = None, 0, []
    for u in sorted(screens):
        if u not in files or not beats(screens[u], best_b and best_b[1]):
            continue
        confirmations += 1
        c = score_of(u, f"confirm{K}", confirm)
        f5, x5 = screens[u]
        combined = ((n5 * f5 + K * c["flag_rate"]) / (n5 + K), (n5 * x5 + K * c["x_mean"]) / (n5 + K))
        won = beats(combined, best_b and best_b[1])
        log.append({"updates": u, "screen": screens[u], "confirm": [c["flag_rate"], c["x_mean"]], "combined": combined,
                    "new_best": won})
        if won:
            best_b = (u, combined)
    print(f"B (K={K}): update {best_b[0]} combined {best_b[1]}; {confirmations} confirmations")

    held = replace(periodic, episodes=20, seed=1000, workers=2, per_stage=True, level=None)
    picks = {"A": best_a[0], f"B{K}": best_b[0]}
    results = {}
    for name, u in picks.items():
        h = score_of(u, "heldout", held)
        results[name] = {"updates": u, "heldout_flag_rate": h["flag_rate"], "heldout_x_mean": h["x_mean"]}
        print(f"held out {name} (update {u}): flags {round(h['flag_rate'] * 20)}/20, mean x {h['x_mean']:.0f}")
    (out / f"study-K{K}.json").write_text(json.dumps({"K": K, "picks": results, "confirmations": log,
                                                       "periodic": len(screens)}, indent=1))

if __name__ == '__main__':
    main()
