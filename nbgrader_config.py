"""nbgrader settings: this repository is the nbgrader course directory (source/ -> release/)."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "hw_rnn_course"
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".pytest_cache",
    "surname_model.pt",  # written by the master while it runs: the build moves it to solutions/
    "submission_log.json",
    "char_lm.pt",
]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Long cells take their short path under nbgrader (hwcheck.fast_mode reads NBGRADER_EXECUTION).
c.Execute.timeout = 120
