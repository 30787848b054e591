[#- The archiver: `console core:archive` as a periodic batch job. Jinja delimiters are
    [[ ]] and [% %] (as in nomad-pack); values arrive already escaped. -#]
job [[ job.job_id | hcl ]] {
  type        = "batch"
  region      = [[ job.region | hcl ]]
  namespace   = [[ job.namespace | hcl ]]
  datacenters = [[ job.datacenters | hcl ]]
  node_pool   = [[ job.node_pool | hcl ]]
  priority    = [[ job.priority | hcl ]]

  meta {
[[ job.meta | hcl_attributes(4) ]]
  }

  periodic {
    cron             = [[ job.periodic.cron | hcl ]]
    time_zone        = [[ job.periodic.time_zone | hcl ]]
    prohibit_overlap = [[ job.periodic.prohibit_overlap | hcl ]]
  }

  group [[ job.group | hcl ]] {
    count = 1
[% include "_constraints.nomad.tpl" %]

    restart {
      attempts = [[ job.restart.attempts | hcl ]]
      interval = [[ job.restart.interval | hcl ]]
      delay    = [[ job.restart.delay | hcl ]]
      mode     = [[ job.restart.mode | hcl ]]
    }
[% include "_reschedule.nomad.tpl" %]

[% include "_task.nomad.tpl" %]
  }
}
