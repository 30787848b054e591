# Compiled from matomo_nomad/templates/_constraints.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 82a3fc9527d824ed324eb27962d7f5aa7fec3ef61f456e390186f5fdf2049474
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_constraints.nomad.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_job = resolve('job')
    try:
        t_1 = environment.filters['hcl']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'hcl' found.")
    pass
    for l_1_constraint in environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'constraints'):
        _loop_vars = {}
        pass
        yield '\n    constraint {\n'
        if environment.getattr(l_1_constraint, 'attribute'):
            pass
            yield '      attribute = '
            yield str(t_1(environment.getattr(l_1_constraint, 'attribute')))
            yield '\n      operator  = '
            yield str(t_1(environment.getattr(l_1_constraint, 'operator')))
            yield '\n      value     = '
            yield str(t_1(environment.getattr(l_1_constraint, 'value')))
            yield '\n'
        else:
            pass
            yield '      operator = '
            yield str(t_1(environment.getattr(l_1_constraint, 'operator')))
            yield '\n      value    = '
            yield str(t_1(environment.getattr(l_1_constraint, 'value')))
            yield '\n'
        yield '    }\n'
    l_1_constraint = missing

blocks = {}
debug_info = '1=20&4=24&5=27&6=29&7=31&10=36&11=38'
