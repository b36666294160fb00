#!/usr/bin/env python3
"""Turns the raw measurements of bench/run.sh into a table, ratios and goal checks.

  report.py RESULTS_TSV META_JSON OUT_MD OUT_JSON

RESULTS_TSV columns (tab separated, no header):
  tool phase status wall_s user_s sys_s maxrss_kib repo_bytes extra
where status is ok | failed | mismatch, and extra is free text (phase notes).
Prints the text table and goal verdicts on stdout; always exits 0 (missing a
performance goal is not an error; run.sh decides the exit code).
"""

import json
import sys

PHASES = ["full", "incremental", "nochange", "restore"]
PEERS = ["restic", "borg"]
MIB = 1024 * 1024


def load(tsv):
    rows = {}
    order = []
    with open(tsv) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (9 - len(parts))
            tool, phase, status, wall, usr, sys_, rss, stored, extra = parts[:9]
            num = lambda s: float(s) if s not in ("", "-") else None
            r = {
                "tool": tool, "phase": phase, "status": status,
                "wallSeconds": num(wall), "userSeconds": num(usr), "sysSeconds": num(sys_),
                "maxRssKiB": num(rss), "repoBytes": int(stored) if stored not in ("", "-") else None,
                "notes": extra,
            }
            if r["userSeconds"] is not None and r["sysSeconds"] is not None:
                r["cpuSeconds"] = round(r["userSeconds"] + r["sysSeconds"], 2)
            else:
                r["cpuSeconds"] = None
            r["maxRssMiB"] = round(r["maxRssKiB"] / 1024, 1) if r["maxRssKiB"] is not None else None
            if tool not in rows:
                rows[tool] = {}
                order.append(tool)
            rows[tool][phase] = r
    # repo growth per backup phase
    for tool in order:
        prev = 0
        for ph in ["full", "incremental", "nochange"]:
            r = rows[tool].get(ph)
            if r and r["repoBytes"] is not None:
                r["repoGrowthBytes"] = r["repoBytes"] - prev
                prev = r["repoBytes"]
    return rows, order


def fmt_s(x):
    return "-" if x is None else f"{x:.2f}"


def fmt_mib(b, digits=1):
    return "-" if b is None else f"{b / MIB:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(x):
    return "-" if x is None else f"{x:.3f}"


def get(rows, tool, phase, key):
    r = rows.get(tool, {}).get(phase)
    if not r or r["status"] != "ok":  # failed or mismatching runs never count
        return None
    return r.get(key)


def goals(rows):
    out = []
    c = "coffre" in rows

    def add(name, value, limit, detail):
        if not c or value is None or limit is None:
            verdict = "N/A"
        else:
            verdict = "MET" if value <= limit else "NOT MET"
        out.append({"goal": name, "value": value, "limit": limit, "verdict": verdict, "detail": detail})

    b_full = get(rows, "borg", "full", "wallSeconds")
    add("full backup wall <= 1/3 of borg's",
        get(rows, "coffre", "full", "wallSeconds"), b_full / 3 if b_full else None, "seconds")
    b_inc = get(rows, "borg", "incremental", "wallSeconds")
    add("incremental wall <= 1/5 of borg's",
        get(rows, "coffre", "incremental", "wallSeconds"), b_inc / 5 if b_inc else None, "seconds")
    growth = [get(rows, p, "incremental", "repoGrowthBytes") for p in PEERS]
    growth = [g for g in growth if g is not None]
    add("incremental repo growth <= 1/4 of best peer's",
        get(rows, "coffre", "incremental", "repoGrowthBytes"),
        min(growth) / 4 if growth else None, "bytes")
    rest = [get(rows, p, "restore", "wallSeconds") for p in PEERS]
    rest = [g for g in rest if g is not None]
    add("restore wall <= 1/3 of best peer's",
        get(rows, "coffre", "restore", "wallSeconds"), min(rest) / 3 if rest else None, "seconds")
    rss = [get(rows, "coffre", ph, "maxRssMiB") for ph in PHASES]
    rss = [r for r in rss if r is not None]
    add("coffre peak RSS <= 256 MiB", max(rss) if rss else None, 256.0 if c else None, "MiB")
    return out


def build(rows, order, meta):
    lines_txt = []
    md = []
    hdr = ["tool", "phase", "status", "wall s", "CPU s (usr+sys)", "peak RSS MiB",
           "repo MiB (cumulative)", "repo growth MiB", "notes"]
    table = []
    for tool in order:
        for ph in PHASES:
            r = rows[tool].get(ph)
            if not r:
                continue
            growth = r.get("repoGrowthBytes")
            table.append([tool, ph, r["status"], fmt_s(r["wallSeconds"]), fmt_s(r["cpuSeconds"]),
                          fmt_s(r["maxRssMiB"]) if r["maxRssMiB"] is not None else "-",
                          fmt_mib(r["repoBytes"]), fmt_mib(growth, 2) if ph != "restore" else "", r["notes"]])
    widths = [max(len(hdr[i]), *(len(row[i]) for row in table)) if table else len(hdr[i])
              for i in range(len(hdr))]
    line = lambda cells: "  ".join(c.ljust(widths[i]) if i in (0, 1, 2, 8) else c.rjust(widths[i])
                                   for i, c in enumerate(cells)).rstrip()
    lines_txt.append(line(hdr))
    lines_txt.append("  ".join("-" * w for w in widths))
    prev_tool = None
    for row in table:
        if prev_tool is not None and row[0] != prev_tool:
            lines_txt.append("")
        prev_tool = row[0]
        lines_txt.append(line(row))
    md.append("| " + " | ".join(hdr) + " |")
    md.append("|" + "|".join("---" if i in (0, 1, 2, 8) else "---:" for i in range(len(hdr))) + "|")
    for row in table:
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")

    # ratios
    ratios = []
    if "coffre" in rows:
        for peer in PEERS:
            if peer not in rows:
                continue
            for ph in PHASES:
                entry = {"peer": peer, "phase": ph,
                         "wall": ratio(get(rows, "coffre", ph, "wallSeconds"), get(rows, peer, ph, "wallSeconds")),
                         "cpu": ratio(get(rows, "coffre", ph, "cpuSeconds"), get(rows, peer, ph, "cpuSeconds")),
                         "rss": ratio(get(rows, "coffre", ph, "maxRssKiB"), get(rows, peer, ph, "maxRssKiB"))}
                if ph in ("full", "incremental"):
                    key = "repoBytes" if ph == "full" else "repoGrowthBytes"
                    entry["stored"] = ratio(get(rows, "coffre", ph, key), get(rows, peer, ph, key))
                else:
                    entry["stored"] = None
                ratios.append(entry)
    rhdr = ["coffre / peer", "phase", "wall", "CPU", "peak RSS", "stored (full: repo, incr: growth)"]
    rtab = [[f"coffre / {e['peer']}", e["phase"], fmt_ratio(e["wall"]), fmt_ratio(e["cpu"]),
             fmt_ratio(e["rss"]), fmt_ratio(e["stored"])] for e in ratios]
    gl = goals(rows)
    return lines_txt, md, (rhdr, rtab), ratios, gl


def main():
    tsv, meta_path, out_md, out_json = sys.argv[1:5]
    with open(meta_path) as f:
        meta = json.load(f)
    rows, order = load(tsv)
    txt, md, (rhdr, rtab), ratios, gl = build(rows, order, meta)

    print()
    print(f"Results ({meta.get('imageSizeMiB')} MiB image; page cache warm: the source was read "
          f"once before each backup; times are GNU time wall/CPU)")
    print()
    print("\n".join(txt))
    if rtab:
        print()
        w = [max(len(rhdr[i]), *(len(r[i]) for r in rtab)) for i in range(len(rhdr))]
        print("  ".join(rhdr[i].ljust(w[i]) for i in range(len(rhdr))))
        print("  ".join("-" * x for x in w))
        for r in rtab:
            print("  ".join(r[i].ljust(w[i]) if i < 2 else r[i].rjust(w[i]) for i in range(len(r))))
    print()
    print("Goals:")
    for g in gl:
        val = "-" if g["value"] is None else (f"{g['value'] / MIB:,.1f} MiB" if g["detail"] == "bytes"
                                             else f"{g['value']:.2f} {'s' if g['detail'] == 'seconds' else 'MiB'}")
        lim = "-" if g["limit"] is None else (f"{g['limit'] / MIB:,.1f} MiB" if g["detail"] == "bytes"
                                             else f"{g['limit']:.2f} {'s' if g['detail'] == 'seconds' else 'MiB'}")
        print(f"  {g['verdict']:8} {g['goal']}  (coffre {val}, limit {lim})")
        g["valueText"], g["limitText"] = val, lim
    for n in meta.get("notes", []):
        print(f"  note: {n}")

    with open(out_md, "w") as f:
        f.write(f"# Coffre benchmark results\n\n")
        f.write(f"- date: {meta.get('date')}\n- machine: {meta.get('machine')}\n")
        f.write(f"- tools: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}\n")
        f.write(f"- image: {meta.get('imageRecipe')}\n")
        f.write(f"- layout: {json.dumps(meta.get('layout'))}\n- churn: {json.dumps(meta.get('churn'))}\n\n")
        f.write("\n".join(md) + "\n\n")
        if rtab:
            f.write("| " + " | ".join(rhdr) + " |\n|---|---|---:|---:|---:|---:|\n")
            for r in rtab:
                f.write("| " + " | ".join(r) + " |\n")
            f.write("\n")
        f.write("| goal | coffre | limit | verdict |\n|---|---:|---:|---|\n")
        for g in gl:
            f.write(f"| {g['goal']} | {g['valueText']} | {g['limitText']} | **{g['verdict']}** |\n")
        f.write("\n")
        for n in meta.get("notes", []):
            f.write(f"- {n}\n")
    with open(out_json, "w") as f:
        json.dump({"meta": meta, "results": [rows[t][p] for t in order for p in PHASES if p in rows[t]],
                   "ratios": ratios, "goals": gl}, f, indent=2)


if __name__ == "__main__":
    main()
