"""Reference data for the synthetic economy: regions, sectors, device mixes, commodities, names.

Plain constants, no randomness. Figures are plausible orders of magnitude for Chinese SMEs in
IoT-finance programmes, not statistics of any real population.
"""

from __future__ import annotations

from dataclasses import dataclass

# Prefecture-level regions (GB/T 2260 codes) with a centre; chosen for the sectors they host.
REGIONS: tuple[tuple[str, str, str, float, float], ...] = (
    ("370200", "青岛市", "Qingdao", 36.07, 120.38),
    ("320500", "苏州市", "Suzhou", 31.30, 120.58),
    ("330200", "宁波市", "Ningbo", 29.87, 121.55),
    ("440300", "深圳市", "Shenzhen", 22.54, 114.06),
    ("140100", "太原市", "Taiyuan", 37.87, 112.55),
    ("610800", "榆林市", "Yulin", 38.29, 109.73),
    ("130200", "唐山市", "Tangshan", 39.63, 118.18),
    ("150100", "呼和浩特市", "Hohhot", 40.84, 111.75),
    ("150200", "包头市", "Baotou", 40.66, 109.84),
    ("230100", "哈尔滨市", "Harbin", 45.80, 126.53),
    ("410100", "郑州市", "Zhengzhou", 34.75, 113.62),
    ("420100", "武汉市", "Wuhan", 30.59, 114.31),
    ("510100", "成都市", "Chengdu", 30.57, 104.07),
    ("350200", "厦门市", "Xiamen", 24.48, 118.09),
    ("370100", "济南市", "Jinan", 36.65, 117.12),
    ("210200", "大连市", "Dalian", 38.91, 121.61),
    ("640100", "银川市", "Yinchuan", 38.49, 106.23),
    ("650100", "乌鲁木齐市", "Urumqi", 43.83, 87.62),
    ("450100", "南宁市", "Nanning", 22.82, 108.37),
    ("340100", "合肥市", "Hefei", 31.82, 117.23),
)

SECTORS = ("manufacturing", "logistics", "energy", "agriculture", "infrastructure")

# Sub-sectors per sector, with the commodity a pledged stock or output is priced in.
SUBSECTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "manufacturing": (("steel_products", "steel"), ("auto_parts", "steel"), ("textiles", "cotton"),
                      ("electronics", "copper"), ("food_processing", "grain")),
    "logistics": (("road_freight", "diesel"), ("cold_chain", "diesel"), ("warehousing", "diesel")),
    "energy": (("coal_storage", "coal"), ("oil_storage", "oil")),
    "agriculture": (("dairy", "milk"), ("livestock", "cattle"), ("crops", "grain")),
    "infrastructure": (("construction", "steel"), ("equipment_leasing", "steel")),
}

SECTOR_LABELS = {
    "manufacturing": ("制造", "Manufacturing"),
    "logistics": ("物流", "Logistics"),
    "energy": ("能源", "Energy"),
    "agriculture": ("农牧", "Agriculture"),
    "infrastructure": ("基建", "Infrastructure"),
}

# Indicative commodity prices in yuan per unit of the quantity the sensors measure (t or m3 or head).
COMMODITY_PRICES: dict[str, tuple[str, float]] = {
    "steel": ("t", 3800.0), "cotton": ("t", 15500.0), "copper": ("t", 68000.0), "grain": ("t", 2700.0),
    "diesel": ("t", 7600.0), "coal": ("t", 850.0), "oil": ("m3", 4300.0), "milk": ("t", 3600.0),
    "cattle": ("head", 14000.0),
}

DEVICE_TYPES = ("electricity_meter", "machine_sensor", "load_cell", "door_seal", "env_sensor",
                "gps_tracker", "tank_gauge", "livestock_tag")

# Reporting interval (s) and metric columns per device type; matches iotfin.devices.model profiles.
INTERVAL_S = {"electricity_meter": 900, "machine_sensor": 900, "load_cell": 900, "door_seal": 900,
              "env_sensor": 900, "gps_tracker": 600, "tank_gauge": 1800, "livestock_tag": 3600}
METRICS = {
    "electricity_meter": ("energy_kwh", "power_kw"),
    "machine_sensor": ("runtime_min", "cycles"),
    "load_cell": ("weight_t",),
    "door_seal": ("door_open", "seal_intact"),
    "env_sensor": ("temperature_c", "humidity_pct"),
    "gps_tracker": ("lat", "lon", "speed_kmh"),
    "tank_gauge": ("level_pct", "volume_m3"),
    "livestock_tag": ("activity", "body_temp_c"),
}
SERIAL_PREFIX = {"electricity_meter": "EM", "machine_sensor": "MS", "load_cell": "LC", "door_seal": "DS",
                 "env_sensor": "EV", "gps_tracker": "GT", "tank_gauge": "TG", "livestock_tag": "LT"}

# Expected devices per enterprise by sub-sector before scaling to the requested fleet size.
DEVICE_MIX: dict[str, dict[str, float]] = {
    "steel_products": {"electricity_meter": 2, "machine_sensor": 5, "load_cell": 2, "door_seal": 1, "env_sensor": 1, "gps_tracker": 1},
    "auto_parts": {"electricity_meter": 2, "machine_sensor": 6, "load_cell": 1, "door_seal": 1, "env_sensor": 1},
    "textiles": {"electricity_meter": 1, "machine_sensor": 6, "load_cell": 1, "door_seal": 1, "env_sensor": 1},
    "electronics": {"electricity_meter": 1, "machine_sensor": 4, "door_seal": 1, "env_sensor": 2},
    "food_processing": {"electricity_meter": 1, "machine_sensor": 3, "load_cell": 2, "door_seal": 1, "env_sensor": 2},
    "road_freight": {"electricity_meter": 1, "gps_tracker": 9},
    "cold_chain": {"electricity_meter": 1, "gps_tracker": 6, "env_sensor": 3},
    "warehousing": {"electricity_meter": 1, "load_cell": 4, "door_seal": 3, "env_sensor": 2, "gps_tracker": 2},
    "coal_storage": {"electricity_meter": 1, "load_cell": 5, "door_seal": 2, "gps_tracker": 2},
    "oil_storage": {"electricity_meter": 1, "tank_gauge": 5, "door_seal": 2, "gps_tracker": 1},
    "dairy": {"electricity_meter": 1, "livestock_tag": 12, "env_sensor": 1, "tank_gauge": 1},
    "livestock": {"electricity_meter": 1, "livestock_tag": 14},
    "crops": {"electricity_meter": 1, "load_cell": 3, "env_sensor": 3, "door_seal": 1},
    "construction": {"electricity_meter": 2, "machine_sensor": 4, "gps_tracker": 3},
    "equipment_leasing": {"electricity_meter": 1, "machine_sensor": 5, "gps_tracker": 4},
}

# Typical connected load (kW) of one metered circuit and typical stock capacity (t) per sector.
METER_KW = {"manufacturing": 260.0, "logistics": 25.0, "energy": 90.0, "agriculture": 45.0, "infrastructure": 160.0}
STOCK_T = {"manufacturing": 900.0, "logistics": 1500.0, "energy": 12000.0, "agriculture": 600.0,
           "infrastructure": 400.0}

# Operating hours (local) and how busy each hour is, per sector: index 0..23.
_DAY_SHIFT = tuple(1.0 if 8 <= h < 18 else 0.15 for h in range(24))
_TWO_SHIFTS = tuple(1.0 if 7 <= h < 23 else 0.2 for h in range(24))
_ROUND_THE_CLOCK = tuple(0.85 + 0.15 * (8 <= h < 20) for h in range(24))
HOURLY_LOAD = {
    "manufacturing": _TWO_SHIFTS,
    "logistics": _DAY_SHIFT,
    "energy": _ROUND_THE_CLOCK,
    "agriculture": _ROUND_THE_CLOCK,
    "infrastructure": _DAY_SHIFT,
}
SITE_KIND = {"manufacturing": "factory", "logistics": "depot", "energy": "yard", "agriculture": "farm",
             "infrastructure": "site"}


@dataclass(frozen=True, slots=True)
class Lender:
    code: str
    name: str
    name_en: str
    kind: str


LENDERS: tuple[Lender, ...] = (
    Lender("platform", "物联金融平台运营方", "iotfin platform operator", "platform"),
    Lender("bank-a", "示范商业银行", "Demonstration Commercial Bank", "bank"),
    Lender("bank-b", "东海农村商业银行", "Donghai Rural Commercial Bank", "bank"),
    Lender("bank-c", "北方城市商业银行", "Northern City Commercial Bank", "bank"),
    Lender("bank-d", "西部开发银行", "Western Development Bank", "bank"),
)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏辉建国志文斌宇浩凯健俊帆帅旭宁"
# Trade-name syllables and their pinyin, for readable bilingual enterprise names.
TRADE_NAMES: tuple[tuple[str, str], ...] = (
    ("华盛", "Huasheng"), ("恒通", "Hengtong"), ("鑫源", "Xinyuan"), ("瑞丰", "Ruifeng"), ("永泰", "Yongtai"),
    ("金达", "Jinda"), ("宏远", "Hongyuan"), ("广利", "Guangli"), ("天成", "Tiancheng"), ("新合", "Xinhe"),
    ("中联", "Zhonglian"), ("富康", "Fukang"), ("长荣", "Changrong"), ("德隆", "Delong"), ("盛达", "Shengda"),
    ("东方", "Dongfang"), ("海航", "Haihang"), ("嘉禾", "Jiahe"), ("兴旺", "Xingwang"), ("安泰", "Antai"),
    ("鼎新", "Dingxin"), ("汇丰", "Huifeng"), ("润泽", "Runze"), ("博远", "Boyuan"), ("昌盛", "Changsheng"),
    ("正大", "Zhengda"), ("万通", "Wantong"), ("国信", "Guoxin"), ("同创", "Tongchuang"), ("利民", "Limin"),
)
NAME_SUFFIX: dict[str, tuple[str, str]] = {
    "steel_products": ("钢材制品有限公司", "Steel Products Co., Ltd."),
    "auto_parts": ("汽车零部件有限公司", "Auto Parts Co., Ltd."),
    "textiles": ("纺织有限公司", "Textiles Co., Ltd."),
    "electronics": ("电子科技有限公司", "Electronics Co., Ltd."),
    "food_processing": ("食品有限公司", "Foods Co., Ltd."),
    "road_freight": ("物流运输有限公司", "Freight Co., Ltd."),
    "cold_chain": ("冷链物流有限公司", "Cold Chain Logistics Co., Ltd."),
    "warehousing": ("仓储有限公司", "Warehousing Co., Ltd."),
    "coal_storage": ("煤炭储运有限公司", "Coal Storage Co., Ltd."),
    "oil_storage": ("石油储运有限公司", "Oil Storage Co., Ltd."),
    "dairy": ("乳业牧场有限公司", "Dairy Farm Co., Ltd."),
    "livestock": ("畜牧养殖有限公司", "Livestock Co., Ltd."),
    "crops": ("粮食种植专业合作社", "Grain Cooperative"),
    "construction": ("建设工程有限公司", "Construction Co., Ltd."),
    "equipment_leasing": ("设备租赁有限公司", "Equipment Leasing Co., Ltd."),
}

INCIDENT_TYPES = ("inventory_moved_out", "geofence_exit", "device_dark", "device_replay", "device_tamper",
                  "double_financing", "fabricated_trade", "production_shutdown")
