# The two commands: `make release` and `make test`. Both create .venv with the pinned dependencies if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
INSTALLED := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv release test bench emulate-gradescope data data-check lint grade grade-many merge-grades clean

$(INSTALLED): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(INSTALLED)

venv: $(INSTALLED)

## make release: goldens from the masters, release/ (nbgrader), solutions/, autograder/dist/autograder.zip;
## a master whose inputs did not change is not executed again (build/cache). make release FORCE=1 rebuilds all.
release: $(INSTALLED)
	$(PY) -m assignkit.build $(if $(filter-out 0,$(FORCE)),--force,)

## make test: the whole pytest suite (what .ci/run calls). Three workers on two cores: a worker often waits for
## its grading's children or a kernel, and a third keeps both cores busy (README "Measured numbers")
test: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 3 --dist loadgroup --durations=25

## make bench: timings and training targets, written to bench/results.json and printed as tables
bench: $(INSTALLED)
	$(PY) -m assignkit.bench

## make emulate-gradescope [ARGS=...]: Gradescope on Python 3.10, as root, after make release (network needed): the
## bundle's setup.sh, then run_autograder on the solution (all 88 points) and the blank release (none); figures in
## bench/gradescope_py310.json. Torch is PyPI's CUDA build, hence a raised address-space limit (README "Tested on")
emulate-gradescope: $(INSTALLED)
	$(PY) -m assignkit.emulate $(ARGS)

## make data: rebuild the surname dataset from the pinned packages
data: $(INSTALLED)
	$(PY) -m assignkit.surnames.build --out-root .

## make data-check: fail if the committed dataset differs from a fresh build
data-check: $(INSTALLED)
	$(PY) -m assignkit.surnames.build --out-root . --check

lint: $(INSTALLED)
	$(PY) -m ruff check .

## make grade SUBMISSION=path/to/folder [OUT=results] [ARGS=...]: grade one submission locally (as root: sandboxed)
grade: $(INSTALLED)
	$(PY) -m assignkit.grading.grade $(SUBMISSION) $(if $(OUT),--out $(OUT),) $(ARGS)

## make grade-many SUBMISSIONS=parent [CSV=grades.csv] [JOBS=2] [OUT=results]: every subfolder is one submission,
## graded in parallel; OUT/<subfolder>/ gets its results.json and submission_log.json
grade-many: $(INSTALLED)
	$(PY) -m assignkit.grading.grade --many $(SUBMISSIONS) --csv $(or $(CSV),grades.csv) -j $(or $(JOBS),2) \
		$(if $(OUT),--out $(OUT),) $(ARGS)

## make merge-grades [GRADES=grades.csv] [WRITTEN=results/written_answers/written_scores.csv] [FINAL=final_grades.csv]:
## the filled-in scores of the written answers merged with grade-many's grades into the final table
merge-grades: $(INSTALLED)
	$(PY) -m assignkit.grading.byquestion merge --grades $(or $(GRADES),grades.csv) \
		--written $(or $(WRITTEN),results/written_answers/written_scores.csv) --out $(or $(FINAL),final_grades.csv)

clean:
	rm -rf build autograder/dist gradebook.db .pytest_cache
