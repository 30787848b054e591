    task [[ job.task | hcl ]] {
[[ task_attributes | hcl_attributes(6) ]]

      config {
[[ docker_config | hcl_attributes(8) ]]
[% if config_template %]

        # Read-only: with the complete plugin lists baked into the image and the
        # database prepared by the setup job, no role has a reason to write it.
        mount {
          type     = "bind"
          source   = [[ config_destination | hcl ]]
          target   = [[ config_target | hcl ]]
          readonly = true
        }
[% endif %]
      }
[% if config_template %]

      # config.ini.php: secrets are read here at run time and never stored in the job.
      template {
        data                 = [[ config_template | hcl_heredoc ]]
        destination          = [[ config_destination | hcl ]]
        change_mode          = "restart"
        error_on_missing_key = true
      }
[% endif %]
[% for file in secret_files %]

      # A secret as a file of its own, exactly as stored.
      template {
        data                 = [[ file.template | hcl ]]
        destination          = [[ file.destination | hcl ]]
        change_mode          = "noop"
        error_on_missing_key = true
        perms                = [[ file.perms | hcl ]]
      }
[% endfor %]
[% if env_template %]

      # Environment variables whose values are secrets: Nomad reads this file back as
      # NAME="value" lines (go-envparse) and sets them; the job never holds the values.
      template {
        data                 = [[ env_template | hcl_heredoc ]]
        destination          = [[ env_destination | hcl ]]
        env                  = true
        change_mode          = "restart"
        error_on_missing_key = true
        perms                = [[ env_perms | hcl ]]
      }
[% endif %]
[% if job.secrets.provider == "vault" and job.secret_keys %]

      vault {
[% if job.secrets.vault_role %]
        role = [[ job.secrets.vault_role | hcl ]]
[% endif %]
[% if job.secrets.vault_policies %]
        policies = [[ job.secrets.vault_policies | list | hcl ]]
[% endif %]
      }
[% endif %]
[% if job.env %]

      env {
[[ job.env | hcl_attributes(8) ]]
      }
[% endif %]

      resources {
[[ resources | hcl_attributes(8) ]]
      }
    }
