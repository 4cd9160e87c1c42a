# ext/examples/quickstart.py: the timelimit quick start in Python (README.md).
import sqlite3

db = sqlite3.connect("app.db")
db.enable_load_extension(True)
db.load_extension("ext/timelimit")        # run from the repository's root
db.execute("SELECT timelimit(1000)")      # every later statement: 1 s at most
try:
    db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)"
               " SELECT count(*) FROM c").fetchall()
except sqlite3.OperationalError as e:     # "interrupted"
    print(e, db.execute("SELECT timelimit_reason()").fetchone()[0])
