# The ZO fine-tuning benchmark: models x tasks x methods x seeds -> run artifacts -> tables -> figures.
#   snakemake --cores all                               # the default suite (config/default.yaml)
#   snakemake --cores all --configfile config/smoke.yaml  # any other suite
from snakemake.utils import min_version

min_version("9.0")

# No `configfile:` directive: Snakemake would deep-merge --configfile over it, so another suite would
# inherit the default suite's methods. config/default.yaml is used only when no suite is given.
DEFAULT_CONFIG = "config/default.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/methods/sparse_zo_int4.smk"
include: "rules/methods/mezo_oat_rephrase.smk"
include: "rules/tables.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        TABLE_CSV,
        TABLE_MD,
        FIGURES,
        SCORECARDS,
        EXTRA_TARGETS,
