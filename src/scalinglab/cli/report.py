"""``scalinglab report STUDY``: the study's figures and tables as one self-contained HTML."""

from __future__ import annotations


def run(args) -> int:
    from scalinglab.report import write_report

    path = write_report(args.study, args.out)
    print(f"report: {path.resolve()}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write STUDY/report.html (figures, fits, allocation)",
        description="Example: scalinglab report studies/s1 (then open studies/s1/report.html)",
    )
    p.add_argument("study", help="study directory (with study.csv; fits.json when fitted)")
    p.add_argument("--out", help="where to write the page (default STUDY/report.html)")
    p.set_defaults(func=run)
