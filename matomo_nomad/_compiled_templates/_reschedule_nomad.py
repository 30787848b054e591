# Compiled from matomo_nomad/templates/_reschedule.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 89c393b64db51f7d89f0a7ac1143030eb08b10ee7a9f0d0370c1aa59d461746a
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_reschedule.nomad.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_job = resolve('job')
    pass
    if (not environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'reschedule')):
        pass
        yield '\n    # A failed run is final: Nomad would otherwise run it once more elsewhere.\n    reschedule {\n      attempts  = 0\n      unlimited = false\n    }\n'

blocks = {}
debug_info = '1=14'
