[% if not job.reschedule %]

    # A failed run is final: Nomad would otherwise run it once more elsewhere.
    reschedule {
      attempts  = 0
      unlimited = false
    }
[% endif %]
