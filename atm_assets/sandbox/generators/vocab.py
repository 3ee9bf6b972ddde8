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

# top_list reasons as the exchanges word them (a few shortened); index 0/1 follow the day's sign.
TOP_LIST_REASONS: tuple[str, ...] = (
    "日涨幅偏离值达到7%的前5只证券",
    "日跌幅偏离值达到7%的前5只证券",
    "日换手率达到20%的前5只证券",
    "日价格振幅达到15%的前5只证券",
    "连续三个交易日内，涨幅偏离值累计达到20%的证券",
    "连续三个交易日内，跌幅偏离值累计达到20%的证券",
    "有价格涨跌幅限制的日收盘价格涨幅达到15%的前五只证券",
    "无价格涨跌幅限制的证券",
)

# Trading seats on the dragon-tiger list and in block trades; some with awkward characters.
SEATS: tuple[str, ...] = (
    "机构专用",
    "沪股通专用",
    "深股通专用",
    "中信证券股份有限公司上海分公司",
    "华泰证券股份有限公司总部",
    "国泰君安证券股份有限公司上海江苏路证券营业部",
    "东方财富证券股份有限公司拉萨团结路第二证券营业部",
    "东方财富证券股份有限公司拉萨东环路第一证券营业部",
    "招商证券股份有限公司深圳蛇口工业三路证券营业部",
    "中国银河证券股份有限公司绍兴证券营业部",
    "申万宏源证券有限公司上海闵行区东川路证券营业部",
    "海通证券股份有限公司北京知春路证券营业部",
    "光大证券股份有限公司宁波解放南路证券营业部",
    "财通证券股份有限公司杭州上塘路证券营业部",
    "国信证券股份有限公司深圳泰然九路证券营业部",
    "开源证券股份有限公司西安西大街证券营业部",
    "中国国际金融股份有限公司上海分公司",
    "中信建投证券股份有限公司北京东城分公司",
    "兴业证券股份有限公司福州湖东路证券营业部",
    "平安证券股份有限公司深圳深南东路罗湖商务中心证券营业部",
    "华鑫证券有限责任公司上海分公司",
    "甬兴证券有限公司青岛分公司",
    "国盛证券有限责任公司宁波桑田路证券营业部",
    "长江证券股份有限公司武汉友谊路证券营业部",
    "方正证券股份有限公司“长沙”芙蓉中路证券营业部",
    'UBS AG "QFII"',
    "J.P. Morgan Securities plc\tQFII",
    "摩根大通证券（中国）有限公司上海银城中路证券营业部",
    "瑞银证券有限责任公司上海花园石桥路证券营业部",
    "高盛高华证券有限责任公司北京金融大街证券营业部\\总部",
)
