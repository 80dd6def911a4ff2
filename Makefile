# The two commands: `make release` and `make test`. Both create .venv with the pinned dependencies if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
INSTALLED := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv release test bench data data-check lint grade grade-many merge-grades clean

$(INSTALLED): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(INSTALLED)

venv: $(INSTALLED)

## make release: goldens from the masters, release/ (nbgrader), solutions/, autograder/dist/autograder.zip
release: $(INSTALLED)
	$(PY) -m assignkit.build

## make test: the whole pytest suite (what .ci/run calls)
test: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist loadgroup

## make bench: timings and training targets, written to bench/results.json and printed as tables
bench: $(INSTALLED)
	$(PY) -m assignkit.bench

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
