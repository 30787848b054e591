[% for constraint in job.constraints %]

    constraint {
[% if constraint.attribute %]
      attribute = [[ constraint.attribute | hcl ]]
      operator  = [[ constraint.operator | hcl ]]
      value     = [[ constraint.value | hcl ]]
[% else %]
[#- distinct_hosts takes no attribute (Nomad's docs: omit it) #]
      operator = [[ constraint.operator | hcl ]]
      value    = [[ constraint.value | hcl ]]
[% endif %]
    }
[% endfor %]
