[#- A batch job: the archiver (`console core:archive`, periodic) or the setup job (the
    image's setup.php, run once per change of image, plugins or database, before the
    other jobs are registered). Jinja delimiters are [[ ]] and [% %] (as in
    nomad-pack); values arrive already escaped. -#]
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
[% if job.periodic %]

  periodic {
    cron             = [[ job.periodic.cron | hcl ]]
    time_zone        = [[ job.periodic.time_zone | hcl ]]
    prohibit_overlap = [[ job.periodic.prohibit_overlap | hcl ]]
  }
[% endif %]

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
