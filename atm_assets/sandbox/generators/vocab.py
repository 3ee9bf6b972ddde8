"""Words the generators build names from: Chinese and pinyin name parts, areas, industries."""

from __future__ import annotations

_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("浦发", "pf", "Pufa"), ("华夏", "hx", "Huaxia"), ("东方", "df", "Dongfang"),
    ("中信", "zx", "Zhongxin"), ("海通", "ht", "Haitong"), ("招商", "zs", "Zhaoshang"),
    ("万科", "wk", "Wanke"), ("格力", "gl", "Geli"), ("美的", "md", "Meidi"),
    ("长江", "cj", "Changjiang"), ("黄河", "hh", "Huanghe"), ("南方", "nf", "Nanfang"),
    ("北方", "bf", "Beifang"), ("西部", "xb", "Xibu"), ("华东", "hd", "Huadong"),
    ("金桥", "jq", "Jinqiao"), ("天宇", "ty", "Tianyu"), ("恒瑞", "hr", "Hengrui"),
    ("新华", "xh", "Xinhua"), ("光明", "gm", "Guangming"), ("宏达", "hd", "Hongda"),
    ("永泰", "yt", "Yongtai"), ("国金", "gj", "Guojin"), ("申达", "sd", "Shenda"),
    ("红星", "hx", "Hongxing"), ("青松", "qs", "Qingsong"), ("银河", "yh", "Yinhe"),
    ("华远", "hy", "Huayuan"), ("泰山", "ts", "Taishan"), ("鹏博", "pb", "Pengbo"),
    ("同方", "tf", "Tongfang"), ("紫光", "zg", "Ziguang"), ("瑞丰", "rf", "Ruifeng"),
    ("盛和", "sh", "Shenghe"), ("凯乐", "kl", "Kaile"), ("晨光", "cg", "Chenguang"),
    ("中科", "zk", "Zhongke"), ("航天", "ht", "Hangtian"), ("海信", "hx", "Haixin"),
    ("鲁信", "lx", "Luxin"), ("川化", "ch", "Chuanhua"), ("粤电", "yd", "Yuedian"),
    ("湘电", "xd", "Xiangdian"), ("赣能", "gn", "Ganneng"), ("闽东", "md", "Mindong"),
    ("浙能", "zn", "Zheneng"), ("苏宁", "sn", "Suning"), ("京能", "jn", "Jingneng"),
    ("津滨", "jb", "Jinbin"), ("渝开", "yk", "Yukai"), ("龙头", "lt", "Longtou"),
    ("金龙", "jl", "Jinlong"), ("大洋", "dy", "Dayang"), ("远东", "yd", "Yuandong"),
    ("华邦", "hb", "Huabang"), ("天山", "ts", "Tianshan"), ("三峡", "sx", "Sanxia"),
    ("新湖", "xh", "Xinhu"), ("宝钢", "bg", "Baogang"), ("春秋", "cq", "Chunqiu"),
)  # fmt: skip

_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("银行", "yh", "Bank"), ("科技", "kj", "Technology"), ("股份", "gf", "Holdings"),
    ("电子", "dz", "Electronics"), ("医药", "yy", "Pharmaceutical"), ("能源", "ny", "Energy"),
    ("实业", "sy", "Industrial"), ("控股", "kg", "Holding"), ("集团", "jt", "Group"),
    ("发展", "fz", "Development"), ("电气", "dq", "Electric"), ("材料", "cl", "Materials"),
    ("化工", "hg", "Chemical"), ("证券", "zq", "Securities"), ("地产", "dc", "Real Estate"),
    ("传媒", "cm", "Media"), ("汽车", "qc", "Automobile"), ("环保", "hb", "Environmental"),
    ("智能", "zn", "Intelligent"), ("信息", "xx", "Information"), ("生物", "sw", "Biotech"),
    ("食品", "sp", "Foods"), ("重工", "zg", "Heavy Industry"), ("物流", "wl", "Logistics"),
    ("矿业", "ky", "Mining"), ("钢铁", "gt", "Steel"), ("新材", "xc", "New Materials"),
    ("光电", "gd", "Optoelectronics"), ("软件", "rj", "Software"),
    ("通信", "tx", "Communications"),
)  # fmt: skip

# (area as Tushare spells it, administrative suffix used in government owner names)
_AREAS: tuple[tuple[str, str], ...] = (
    ("深圳", "市"), ("北京", "市"), ("上海", "市"), ("广东", "省"), ("浙江", "省"),
    ("江苏", "省"), ("山东", "省"), ("福建", "省"), ("四川", "省"), ("湖北", "省"),
    ("湖南", "省"), ("安徽", "省"), ("河南", "省"), ("河北", "省"), ("辽宁", "省"),
    ("吉林", "省"), ("黑龙江", "省"), ("陕西", "省"), ("山西", "省"), ("江西", "省"),
    ("广西", "壮族自治区"), ("云南", "省"), ("贵州", "省"), ("重庆", "市"), ("天津", "市"),
    ("新疆", "维吾尔自治区"), ("内蒙", "古自治区"), ("甘肃", "省"), ("海南", "省"),
    ("宁夏", "回族自治区"), ("青海", "省"), ("西藏", "自治区"),
)  # fmt: skip

_INDUSTRIES: tuple[str, ...] = (
    "银行", "证券", "保险", "全国地产", "区域地产", "软件服务", "互联网", "通信设备", "元器件",
    "半导体", "电气设备", "化学制药", "生物制药", "中成药", "医疗保健", "汽车配件", "汽车整车",
    "食品", "白酒", "家用电器", "专用机械", "机械基件", "化工原料", "塑料", "钢加工", "普钢",
    "小金属", "铜", "煤炭开采", "石油开采", "火力发电", "水力发电", "新型电力", "建筑工程",
    "装修装饰", "水泥", "环境保护", "物流", "港口", "机场", "航空", "影视音像", "出版业",
    "广告包装", "服饰", "纺织", "农业综合", "种植业", "渔业", "饲料", "旅游景点", "酒店餐饮",
    "商品城", "百货", "超市连锁", "IT设备",
)  # fmt: skip

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN_NAMES: tuple[str, ...] = (
    "建国", "伟", "芳", "敏", "静", "强", "磊", "军", "洋", "勇",
    "艳", "杰", "涛", "明", "超", "秀英", "华", "平", "刚", "桂英",
)  # fmt: skip
_FOREIGN_OWNERS: tuple[str, ...] = ("Patrick O'Neil", "Maria Schmidt", "Kenji Sato", "Ahmed Ali")
_ACT_ENT_TYPES: tuple[tuple[str, int], ...] = (
    # (type, cumulative permille)
    ("民营企业", 500),
    ("地方国企", 750),
    ("中央国企", 870),
    ("外资企业", 900),
    ("集体企业", 920),
    ("其他", 950),
    ("无", 1000),
)
_CO_LTD = ("Co.,Ltd.", "Co., Ltd.", "Corporation Limited", "Group Co.,Ltd.")
