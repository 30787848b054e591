[% for constraint in job.constraints %]

    constraint {
      attribute = [[ constraint.attribute | hcl ]]
      operator  = [[ constraint.operator | hcl ]]
      value     = [[ constraint.value | hcl ]]
    }
[% endfor %]
