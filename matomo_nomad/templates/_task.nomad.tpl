    task [[ job.task | hcl ]] {
[[ task_attributes | hcl_attributes(6) ]]

      config {
[[ docker_config | hcl_attributes(8) ]]

        # Matomo also writes this file (plugin:activate, core:update) and the image's
        # entrypoint chowns /var/www/html, so the mount must stay writable.
        mount {
          type     = "bind"
          source   = [[ config_destination | hcl ]]
          target   = [[ config_target | hcl ]]
          readonly = false
        }
      }

      # config.ini.php: secrets are read here at run time and never stored in the job.
      template {
        data                 = [[ config_template | hcl_heredoc ]]
        destination          = [[ config_destination | hcl ]]
        change_mode          = "restart"
        error_on_missing_key = true
      }
[% if job.secrets.provider == "vault" %]

      vault {
[% if job.secrets.vault_role %]
        role = [[ job.secrets.vault_role | hcl ]]
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
