"""Rebuild data/extra_lengths.jsonl.gz from the upstream `extra/` folder (lengths only, no response texts).

Usage: python data/tools/make_extra_lengths.py SRC_EXTRA_DIR data/extra_lengths.jsonl.gz
One output row per (prompt, model) response with a token count: prompt, response_tokens (Llama 3
tokens, or Vicuna's own output count where no text exists), model, source, prompt_id.
"""
import gzip
import json
import sys
from pathlib import Path


def main(src: Path, out: Path) -> None:
    prompts: dict[str, dict] = {}
    rows = []
    with gzip.open(src / "prompts_responses.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            prompts[r["prompt_id"]] = r
            rows.append((r["prompt_id"], r["model"], r["tok_llama3"]))
    with gzip.open(src / "extra_responses.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            n = r.get("tok_llama3")
            if n is None:
                n = r.get("n_tokens")
            if n is not None:
                rows.append((r["prompt_id"], r["model"], int(n)))
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for prompt_id, model, n in rows:
            p = prompts[prompt_id]
            f.write(json.dumps({"prompt": p["prompt"], "response_tokens": int(n), "model": model,
                                "source": p["source"], "prompt_id": prompt_id}) + "\n")
    print(f"wrote {len(rows)} rows for {len(prompts)} prompts to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
