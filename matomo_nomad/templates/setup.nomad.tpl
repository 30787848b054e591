[#- The setup job: the image's setup.php, once per change of image, plugins or
    database, before the other jobs are registered (`matomo-nomad run` does this).
    Jinja delimiters are [[ ]] and [% %] (as in nomad-pack); values arrive escaped. -#]
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
