"""The style sheet and the script of the status pages: constants, inlined in every page (nothing is
fetched from anywhere else; the pages work on a network without internet).

The script refreshes a page in place every ``data-refresh`` seconds from its JSON (``data-api`` of the
body, docs/status-pages.md): states, counts, ages, rates and sparklines are rewritten with
``textContent`` and attributes only, never as HTML; when the set of offices, devices or interfaces
changed, it fetches the page itself and swaps its ``<main>`` (no full reload). Both constants are fixed,
so the pages' Content-Security-Policy allows exactly them by hash (``CSP``): an injected script or style
would not run.
"""

from __future__ import annotations

import base64
import hashlib
import json

from collector.status_text import DASH, STATES

CSS = """
:root{--ok:#1b873f;--warn:#c77700;--bad:#c62828;--unk:#78808a;--fg:#1d232a;--mut:#5d6873;--bg:#f5f7f9;
--card:#fff;--line:#dde3e8;--in:#1f6fd1;--out:#d9730d}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#12355b;color:#fff;padding:10px 18px;display:flex;flex-wrap:wrap;align-items:baseline;
gap:6px 16px}
header a{color:#fff}header h1{font-size:20px;margin:0}.brand{font-weight:700;text-decoration:none}
.en{font-size:11px;color:var(--mut);font-weight:400}header .en,header .meta{color:#c8d6e5}
.meta{font-size:12px}main{padding:14px 18px;max-width:1400px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card.s-ok b{color:var(--ok)}.card.s-warning b{color:var(--warn)}
.card.s-offline b{color:var(--bad)}.card.s-unknown b{color:var(--unk)}
table{border-collapse:collapse;background:var(--card);width:100%;margin:6px 0 14px}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:middle}
th{font-size:12px;color:var(--mut);font-weight:600;background:#eef2f5}
td.num,th.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;background:var(--unk);
white-space:nowrap}
.b-ok,.b-up,.b-online{background:var(--ok)}.b-warning,.b-stale,.b-testing,.b-dormant{background:var(--warn)}
.b-offline,.b-down,.b-lowerLayerDown{background:var(--bad)}
.b-unknown,.b-pending,.b-notPresent{background:var(--unk)}
.layout{display:grid;grid-template-columns:minmax(280px,420px) 1fr;gap:16px;align-items:start}
@media (max-width:900px){.layout{grid-template-columns:1fr}}
.map{background:var(--card);border:1px solid var(--line);border-radius:6px;width:100%;height:auto}
.map .m-ok{fill:var(--ok)}.map .m-warning{fill:var(--warn)}.map .m-offline{fill:var(--bad)}
.map .m-unknown{fill:var(--unk)}.map circle{stroke:#fff;stroke-width:2}
.map text{font-size:12px;fill:var(--fg)}
.map .frame{fill:#eaf1f7;stroke:var(--line)}
h2{font-size:16px;margin:14px 0 4px}h3{font-size:15px;margin:16px 0 4px}
.filter{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 10px}.filter input{flex:1;min-width:200px}
.filter input,.filter select{padding:5px 8px;border:1px solid var(--line);border-radius:4px;font:inherit}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;background:var(--card);
border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:0 0 12px}
dl.kv dt{color:var(--mut)}dl.kv dd{margin:0}
.spark path{fill:none;stroke-width:1.5}.spark .in{stroke:var(--in)}.spark .out{stroke:var(--out)}
.wan{font-size:11px;color:#fff;background:#12355b;border-radius:3px;padding:0 4px;margin-left:4px}
.muted{color:var(--mut)}.err{color:var(--bad)}.links a{margin-right:12px}
footer{padding:10px 18px;color:var(--mut);font-size:12px}[hidden]{display:none!important}
"""

_JS = """
(function(){
'use strict';
var T=__TEXTS__,B=document.body,every=(+B.dataset.refresh||10)*1000,busy=false;
function dec(v,d){var s=v.toFixed(d).split('.'),i=s[0].replace(/\\B(?=(\\d{3})+(?!\\d))/g,'.');
return s.length>1?i+','+s[1]:i;}
function scaled(v,u){var k=0;while(Math.abs(v)>=1000&&k<u.length-1){v/=1000;k++;}
return dec(v,k===0||Math.abs(v)>=100?0:1)+' '+u[k];}
function bps(v){return v==null?T.dash:scaled(v,['bit/s','kbit/s','Mbit/s','Gbit/s','Tbit/s']);}
function size(v){return v==null?T.dash:scaled(v,['B','kB','MB','GB','TB']);}
function dur(s){if(s==null||s<0)return T.dash;var t=Math.floor(s),p=[[Math.floor(t/86400),'ngày'],
[Math.floor(t%86400/3600),'giờ'],[Math.floor(t%3600/60),'phút'],[t%60,'giây']],f=3,o=[];
for(var i=0;i<4;i++){if(p[i][0]){f=i;break;}}
for(var j=f;j<f+2&&j<4;j++){if(p[j][0])o.push(p[j][0]+' '+p[j][1]);}return o.join(' ')||'0 giây';}
function ago(s){return s==null?T.dash:(s<2?'vừa xong':dur(s)+' trước');}
function num(v){return v==null?T.dash:dec(v,v===Math.floor(v)?0:2);}
function put(el,text){if(el&&el.textContent!==text)el.textContent=text;}
function badge(el,kind,state){if(!el)return;var s=(T.states[kind]||{})[state]||[state,state];
put(el,s[0]);el.title=s[1];el.className=el.className.replace(/\\bb-\\S+/,'b-'+state);}
function q(root,sel){return root.querySelector(sel);}
function all(sel){return Array.prototype.slice.call(document.querySelectorAll(sel));}
function same(a,b){if(a.length!==b.length)return false;a=a.slice().sort();b=b.slice().sort();
for(var i=0;i<a.length;i++){if(a[i]!==b[i])return false;}return true;}
function path(vals,top,w,h){var d='',pen=false,st=w/Math.max(vals.length-1,1);
for(var i=0;i<vals.length;i++){var v=vals[i];if(v==null){pen=false;continue;}
d+=(pen?'L':'M')+(i*st).toFixed(1)+' '+(h-1-(v/top)*(h-2)).toFixed(1);pen=true;}return d;}
function spark(svg,h){if(!svg)return;var v=h['in'].concat(h.out).filter(function(x){return x!=null;}),
top=Math.max.apply(null,v.concat([1])),w=+svg.getAttribute('width'),hh=+svg.getAttribute('height');
q(svg,'.in').setAttribute('d',path(h['in'],top,w,hh));q(svg,'.out').setAttribute('d',path(h.out,top,w,hh));}
function ages(now){all('[data-ts]').forEach(function(el){var t=+el.dataset.ts;if(t)put(el,ago(now-t));});}
function swap(){fetch(location.pathname,{headers:{'Accept':'text/html'},cache:'no-store'})
.then(function(r){return r.ok?r.text():null;}).then(function(t){if(!t)return;
var m=new DOMParser().parseFromString(t,'text/html').getElementById('main');
if(m){document.getElementById('main').replaceWith(m);bind();}});}
function province(d){
var rows={};all('tr[data-agent]').forEach(function(r){rows[r.dataset.agent]=r;});
if(!same(Object.keys(rows),d.offices.map(function(o){return o.agent;}))){swap();return;}
Object.keys(d.counts).forEach(function(k){var el=document.getElementById('c-'+k);
if(el)put(el,String(d.counts[k]));});
put(document.getElementById('c-devices'),d.counts.devices_up+'/'+d.counts.devices_total);
d.offices.forEach(function(o){var r=rows[o.agent];r.dataset.state=o.state;badge(q(r,'.st'),'office',o.state);
put(q(r,'.dev'),o.devices_up+'/'+o.devices_total);badge(q(r,'.link'),'link',o.link);
var s=q(r,'.seen');if(s)s.dataset.ts=o.last_seen||'';
all('[data-marker]').forEach(function(c){if(c.dataset.marker===o.agent)c.setAttribute('class','m-'+o.state);});});
filter();}
function office(d){
var devs={},ifs={},probes={};all('tr[data-dev]').forEach(function(r){devs[r.dataset.dev]=r;});
all('tr[data-if]').forEach(function(r){ifs[r.dataset.owner+'\\n'+r.dataset.if]=r;});
all('tr[data-probe]').forEach(function(r){probes[r.dataset.probe]=r;});
var ik=[];d.devices.forEach(function(v){v.interfaces.forEach(function(i){
ik.push(v.name+'\\n'+i.if_index);});});
if(!same(Object.keys(devs),d.devices.map(function(v){return v.name;}))||!same(Object.keys(ifs),ik)||
!same(Object.keys(probes),d.probes.map(function(p){return p.name;}))){swap();return;}
badge(document.getElementById('office-state'),'office',d.office.state);
var a=d.agent,b=a.buffer||{};
badge(document.getElementById('agent-online'),'agent',a.online?'online':'offline');
put(document.getElementById('agent-version'),a.version||T.dash);
put(document.getElementById('agent-config'),a.config_version||T.dash);
put(document.getElementById('buf-messages'),num(b.messages));put(document.getElementById('buf-bytes'),size(b.bytes));
put(document.getElementById('buf-oldest'),b.oldest_age_seconds?dur(b.oldest_age_seconds):T.dash);
var ls=document.getElementById('agent-seen');if(ls)ls.dataset.ts=a.last_seen||'';
d.devices.forEach(function(v){var r=devs[v.name];badge(q(r,'.st'),'device',v.state);
put(q(r,'.up'),dur(v.uptime_seconds));put(q(r,'.errors'),String(v.errors));q(r,'.poll').dataset.ts=v.last_poll||'';
v.interfaces.forEach(function(i){var x=ifs[v.name+'\\n'+i.if_index];badge(q(x,'.oper'),'oper',i.oper);
put(q(x,'.speed'),bps(i.speed_bps||null));put(q(x,'.in'),bps(i.in_bps));put(q(x,'.out'),bps(i.out_bps));
spark(q(x,'svg'),i.history);});});
d.probes.forEach(function(p){var r=probes[p.name];badge(q(r,'.st'),'link',p.state);
put(q(r,'.rtt'),p.rtt_seconds==null?T.dash:dec(p.rtt_seconds*1000,1)+' ms');
put(q(r,'.loss'),p.loss_ratio==null?T.dash:dec(p.loss_ratio*100,0)+' %');
q(r,'.poll').dataset.ts=p.last_poll||'';});
var tb=document.getElementById('traps');if(tb){var body=document.createElement('tbody');
d.traps.forEach(function(t){var tr=document.createElement('tr');
[[ago(d.generated-t.last),t.last],[t.device],[t.trap],[String(t.count)]].forEach(function(c){
var td=document.createElement('td');td.textContent=c[0];if(c[1])td.dataset.ts=c[1];tr.appendChild(td);});
body.appendChild(tr);});tb.replaceWith(body);body.id='traps';}}
function refresh(){if(busy)return;busy=true;
fetch(B.dataset.api,{headers:{'Accept':'application/json'},cache:'no-store'})
.then(function(r){if(!r.ok)throw new Error(r.status);return r.json();})
.then(function(d){(B.dataset.page==='province'?province:office)(d);ages(d.generated);
var u=document.getElementById('updated');u.className='';
put(u,new Date(d.generated*1000).toLocaleTimeString('vi-VN'));
B.dataset.refreshed=String((+B.dataset.refreshed||0)+1);})
.catch(function(){var u=document.getElementById('updated');u.className='err';put(u,T.lost);})
.then(function(){busy=false;});}
function filter(){var i=document.getElementById('q'),s=document.getElementById('st');if(!i||!s)return;
var text=i.value.trim().toLowerCase(),want=s.value;
var marks={};all('[data-marker]').forEach(function(c){marks[c.dataset.marker]=c.parentNode;});
all('tr[data-agent]').forEach(function(r){r.hidden=!((!text||r.dataset.search.indexOf(text)>=0)&&
(!want||r.dataset.state===want));var m=marks[r.dataset.agent];if(m)m.toggleAttribute('hidden',r.hidden);});
all('section[data-zone]').forEach(function(z){z.hidden=!z.querySelector('tr[data-agent]:not([hidden])');});}
function bind(){var i=document.getElementById('q'),s=document.getElementById('st');
if(i){i.addEventListener('input',filter);s.addEventListener('change',filter);filter();}}
bind();if(B.dataset.page==='province'||B.dataset.page==='office')setInterval(refresh,every);
})();
"""

JS = _JS.replace("__TEXTS__", json.dumps(
    {"states": STATES, "dash": DASH, "lost": "Mất kết nối tới collector (không tải được dữ liệu)"},
    ensure_ascii=True).replace("<", "\\u003c"))


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


# Everything the pages may load or run: themselves, their inline style and script (by hash), data: images
# (the icon), and fetches to the collector itself.
CSP = (f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(JS)}; img-src data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
