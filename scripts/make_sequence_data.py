"""Rebuild fastnn/datasets' sunspot and word files from the registry wheels they come from.

    pip download statsmodels==0.15.0 english-words==2.0.2 --no-deps -d /tmp/wheels
    python scripts/make_sequence_data.py /tmp/wheels/statsmodels-0.15.0-*.whl \
        /tmp/wheels/english_words-2.0.2-py3-none-any.whl

Writes sunspots_monthly.csv.gz, sunspots_yearly.csv.gz and words.txt.gz into fastnn/datasets/
(gzip level 9 with mtime 0 and no file name, so the bytes are the same on every machine) and
prints the SHA-256 of each uncompressed text, as quoted in the license files and the tests.
Nothing of either package is imported; english-words keeps its lists as pickled sets, read
here by an unpickler that builds nothing but a set of strings.
"""

import gzip
import hashlib
import io
import os
import pickle
import re
import sys
import zipfile
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fastnn", "datasets")
MONTHLY = "statsmodels/datasets/sunspots/src/sunspots_monthly.dat"
YEARLY = "statsmodels/datasets/sunspots/sunspots.csv"
WEB2 = "english_words/data/web2.pickle"
WORD = re.compile(r"[a-z]{2,15}")


class SetOfStrings(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("builtins", "set"):
            return set
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a word list")


def write(name, text):
    data = text.encode("ascii")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buf.getvalue())
    digest = hashlib.sha256(data).hexdigest()
    print(f"{name}: {len(buf.getvalue())} bytes, sha256 of the text {digest}")


def sunspots(wheel):
    with zipfile.ZipFile(wheel) as z:
        monthly = z.read(MONTHLY).decode("ascii")
        yearly = z.read(YEARLY).decode("ascii")
    rows = []
    for line in monthly.splitlines():
        fields = line.split()
        # a year of 12 monthly means; 2009 (6 months, "preliminary after Dec 08") is left out
        if len(fields) == 13 and re.fullmatch(r"1[7-9]\d\d|200\d", fields[0]):
            rows += [f"{fields[0]},{m + 1},{v}" for m, v in enumerate(fields[1:])]
    assert len(rows) == 12 * (2008 - 1749 + 1), len(rows)
    write("sunspots_monthly.csv.gz", "year,month,sunspot_number\n" + "\n".join(rows) + "\n")
    lines = yearly.strip().splitlines()
    assert lines[0] == '"YEAR","SUNACTIVITY"' and len(lines) == 1 + 309
    write("sunspots_yearly.csv.gz", "year,sunspot_number\n" + "\n".join(lines[1:]) + "\n")


def words(wheel):
    with zipfile.ZipFile(wheel) as z:
        web2 = SetOfStrings(io.BytesIO(z.read(WEB2))).load()
    # a quarter of the 2-15 letter words, chosen by the CRC-32 of the reversed word (independent
    # of the validation split, which takes the CRC-32 of the word itself): ~51k words with
    # web2's own length distribution (a cap at 7 letters gave as many, but words too short for
    # a character model to use more context than a trigram does)
    kept = sorted({w for w in web2 if WORD.fullmatch(w)
                   and zlib.crc32(w[::-1].encode("ascii")) % 4 == 0})
    print(f"web2: {len(web2)} entries, {len(kept)} kept")
    write("words.txt.gz", "\n".join(kept) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sunspots(sys.argv[1])
    words(sys.argv[2])
