#!/usr/bin/env python3
"""Generates module/CkptPS/en-US/CkptPS.dll-Help.xml (MAML) from help_text.py. Run after editing the help text:
   python3 module/help/generate_help.py
"""
import os
from xml.sax.saxutils import escape as e

def para(text):
    return "".join(f"<maml:para>{e(p)}</maml:para>" for p in text.split("\n\n"))

def param(p, indent):
    req = "true" if p.get("required") else "false"
    pipe = p.get("pipeline", "False")
    pos = p.get("position", "named")
    aliases = p.get("aliases", "none")
    glob = "true" if p.get("globbing") else "false"
    t = p["type"]
    is_switch = t == "SwitchParameter"
    s = [f'{indent}<command:parameter required="{req}" variableLength="{ "true" if t.endswith("[]") else "false"}" globbing="{glob}" pipelineInput="{pipe}" position="{pos}" aliases="{aliases}">',
         f'{indent}  <maml:name>{p["name"]}</maml:name>',
         f'{indent}  <maml:description>{para(p["desc"])}</maml:description>']
    if not is_switch:
        s.append(f'{indent}  <command:parameterValue required="true" variableLength="{ "true" if t.endswith("[]") else "false"}">{t}</command:parameterValue>')
    s.append(f'{indent}  <dev:type><maml:name>{t}</maml:name><maml:uri /></dev:type>')
    s.append(f'{indent}  <dev:defaultValue>{e(p.get("default", "False" if is_switch else "None"))}</dev:defaultValue>')
    s.append(f'{indent}</command:parameter>')
    return "\n".join(s)

def command(c):
    verb, noun = c["name"].split("-")
    out = [' <command:command xmlns:maml="http://schemas.microsoft.com/maml/2004/10" xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10" xmlns:MSHelp="http://msdn.microsoft.com/mshelp">',
           '  <command:details>',
           f'   <command:name>{c["name"]}</command:name>',
           f'   <command:verb>{verb}</command:verb>',
           f'   <command:noun>{noun}</command:noun>',
           f'   <maml:description>{para(c["synopsis"])}</maml:description>',
           '  </command:details>',
           f'  <maml:description>{para(c["description"])}</maml:description>',
           '  <command:syntax>']
    params = {p["name"]: p for p in c["parameters"]}
    for setname, names in c["sets"]:
        out.append('   <command:syntaxItem>')
        out.append(f'    <maml:name>{c["name"]}</maml:name>')
        for n in names:
            p = dict(params[n])
            if isinstance(p.get("required"), dict):
                p["required"] = p["required"].get(setname, False)
            if isinstance(p.get("position"), dict):
                p["position"] = p["position"].get(setname, "named")
            out.append(param(p, "    "))
        out.append('   </command:syntaxItem>')
    out.append('  </command:syntax>')
    out.append('  <command:parameters>')
    for p in c["parameters"]:
        p = dict(p)
        if isinstance(p.get("required"), dict):
            p["required"] = any(p["required"].values())
        if isinstance(p.get("position"), dict):  # differs per parameter set: say which is which
            p["position"] = ", ".join(f"{position} ({setname})" for setname, position in p["position"].items())
        out.append(param(p, "   "))
    out.append('  </command:parameters>')
    out.append('  <command:inputTypes>')
    for t, d in c["inputs"]:
        out.append(f'   <command:inputType><dev:type><maml:name>{t}</maml:name></dev:type><maml:description>{para(d)}</maml:description></command:inputType>')
    out.append('  </command:inputTypes>')
    out.append('  <command:returnValues>')
    for t, d in c["outputs"]:
        out.append(f'   <command:returnValue><dev:type><maml:name>{t}</maml:name></dev:type><maml:description>{para(d)}</maml:description></command:returnValue>')
    out.append('  </command:returnValues>')
    out.append(f'  <maml:alertSet><maml:alert>{para(c["notes"])}</maml:alert></maml:alertSet>')
    out.append('  <command:examples>')
    for i, (title, code, remarks) in enumerate(c["examples"], 1):
        out.append('   <command:example>')
        out.append(f'    <maml:title>-------------------------- Example {i}: {e(title)} --------------------------</maml:title>')
        out.append(f'    <dev:code>{e(code)}</dev:code>')
        out.append(f'    <dev:remarks>{para(remarks)}</dev:remarks>')
        out.append('   </command:example>')
    out.append('  </command:examples>')
    out.append('  <command:relatedLinks>')
    for link in c["links"]:
        out.append(f'   <maml:navigationLink><maml:linkText>{link}</maml:linkText><maml:uri /></maml:navigationLink>')
    out.append('  </command:relatedLinks>')
    out.append(' </command:command>')
    return "\n".join(out)

HERE = os.path.dirname(os.path.abspath(__file__))
exec(open(os.path.join(HERE, "help_text.py")).read())
doc = ['<?xml version="1.0" encoding="utf-8"?>',
       '<!-- MAML help for the CkptPS cmdlets: Get-Help <cmdlet> -Full / -Examples / -Parameter <name>. -->',
       '<helpItems schema="maml" xmlns="http://msh">']
doc += [command(c) for c in COMMANDS]
doc.append('</helpItems>')
open(os.path.join(HERE, "..", "CkptPS", "en-US", "CkptPS.dll-Help.xml"), "w").write("\n".join(doc) + "\n")
