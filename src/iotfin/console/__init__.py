"""The console (工作台): server-rendered, bilingual pages for credit officers, risk managers, operators
and enterprises, served by `iotfin serve` at `/` (docs/console.md).

Pages read and act through the platform's own API, in-process, as the signed-in user
(`iotfin.console.web`), so a page never shows what the API would refuse. Every asset is vendored
(`static/vendor`), every text is in the zh-CN and en catalogs (`locales/`).
"""
