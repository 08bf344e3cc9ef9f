"""The foundation every layer uses: errors that say how to fix them (`errors`), atomic writes and strict JSON and
YAML (`io`), where things live (`paths`) and the numeric precision a device computes in (`precision`)."""
