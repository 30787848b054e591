[#- A long-running role: admin (the UI), ingestion (tracking) or the queue processor.
    Jinja delimiters are [[ ]] and [% %] (as in nomad-pack) so that HCL's and
    consul-template's own braces stay literal. Values arrive already escaped. -#]
job [[ job.job_id | hcl ]] {
  type        = "service"
  region      = [[ job.region | hcl ]]
  namespace   = [[ job.namespace | hcl ]]
  datacenters = [[ job.datacenters | hcl ]]
  node_pool   = [[ job.node_pool | hcl ]]
  priority    = [[ job.priority | hcl ]]

  meta {
[[ job.meta | hcl_attributes(4) ]]
  }

  group [[ job.group | hcl ]] {
    count = [[ job.count | hcl ]]
[% include "_constraints.nomad.tpl" %]
[% if job.update %]

    update {
      max_parallel      = [[ job.update.max_parallel | hcl ]]
      health_check      = [[ health_check | hcl ]]
      min_healthy_time  = [[ job.update.min_healthy_time | hcl ]]
      healthy_deadline  = [[ job.update.healthy_deadline | hcl ]]
      progress_deadline = [[ job.update.progress_deadline | hcl ]]
      auto_revert       = [[ job.update.auto_revert | hcl ]]
      auto_promote      = [[ job.update.auto_promote | hcl ]]
      canary            = [[ job.update.canary | hcl ]]
    }
[% endif %]
[% if job.port %]

    network {
      port [[ job.port | hcl ]] {
        to = [[ container_port | hcl ]]
      }
    }
[% endif %]
[% if job.service %]

    service {
      name     = [[ job.service.name | hcl ]]
      provider = [[ job.service.provider | hcl ]]
      port     = [[ job.service.port | hcl ]]
      tags     = [[ job.service.tags | hcl ]]
[% if job.service.check %]

      check {
        type     = "http"
        path     = [[ job.service.check.path | hcl ]]
        interval = [[ job.service.check.interval | hcl ]]
        timeout  = [[ job.service.check.timeout | hcl ]]
[% if job.service.check.headers %]

        header {
[[ job.service.check.headers | hcl_attributes(10) ]]
        }
[% endif %]
      }
[% endif %]
    }
[% endif %]

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
