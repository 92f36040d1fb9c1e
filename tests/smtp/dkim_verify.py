#!/usr/bin/env python3
"""Verifies a message's DKIM signature with dkimpy (independent of Gazette), using the
given TXT record instead of DNS. Usage: dkim_verify.py MESSAGE.eml RECORD.txt
Prints "pass" and exits 0, or prints "fail: ..." and exits 1."""
import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    record = open(sys.argv[2], "rb").read().strip()

    def dnsfunc(name, timeout=5):
        return record

    d = dkim.DKIM(message)
    ok = d.verify(dnsfunc=dnsfunc)
    if ok:
        print("pass")
        return 0
    print("fail")
    return 1


if __name__ == "__main__":
    sys.exit(main())
