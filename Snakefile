# The ZO fine-tuning benchmark: models x tasks x methods x seeds -> run artifacts -> tables -> figures.
#   snakemake --cores all                               # the default suite (config/default.yaml)
#   snakemake --cores all --configfile config/smoke.yaml  # any other suite
import glob

from snakemake.utils import min_version

min_version("9.0")

# `snakemake --report` (make report): this page, then every table and figure the suite made (rules wrap
# them in report_table / report_figure, rules/common.smk).
report: "report/workflow.rst"

# No `configfile:` directive: Snakemake would deep-merge --configfile over it, so another suite would
# inherit the default suite's methods. config/default.yaml is used only when no suite is given.
DEFAULT_CONFIG = "config/default.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/train.smk"
# RapidIn, in a suite with an influence: block (before the methods' rules, which may report on it)
include: "rules/influence.smk"
# A method's rule file joins by being there (rules/methods/<id>.smk): no list to edit.
for _method_rules in sorted(glob.glob("rules/methods/*.smk", root_dir=workflow.basedir)):

    include: _method_rules


include: "rules/tables.smk"
include: "rules/figures.smk"


onstart:
    refuse_cuda_without_gpu()


rule all:
    default_target: True
    input:
        TABLE_CSV,
        TABLE_MD,
        VERDICTS,
        FIGURES,
        KSHOT_FIGURE,
        SCORECARDS,
        EXTRA_TARGETS,
