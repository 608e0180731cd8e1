package portal

// messages holds the portal's text in zh-CN and en.
var messages = map[string][2]string{ // key → {zh-CN, en}
	"app":                      {"个人信息保护中心", "Privacy centre"},
	"lang.other":               {"English", "中文"},
	"signin.title":             {"登录", "Sign in"},
	"signin.intro":             {"输入您在本店留存的手机号或电子邮箱，我们会发送一次性验证码。", "Enter the mobile number or e-mail address you gave us; we will send you a one-time code."},
	"signin.id":                {"手机号或电子邮箱", "Mobile number or e-mail"},
	"signin.send":              {"发送验证码", "Send code"},
	"signin.invalid":           {"请输入有效的手机号或电子邮箱。", "Please enter a valid mobile number or e-mail address."},
	"code.title":               {"输入验证码", "Enter your code"},
	"code.intro":               {"如果该号码或邮箱属于我们的客户，验证码已发出，10 分钟内有效。", "If this number or address belongs to a customer, a code is on its way; it is valid for 10 minutes."},
	"code.code":                {"6 位验证码", "6-digit code"},
	"code.submit":              {"登录", "Sign in"},
	"code.wrong":               {"验证码不正确或已失效。", "The code is wrong or no longer valid."},
	"signout":                  {"退出", "Sign out"},
	"home.title":               {"我的个人信息", "My personal information"},
	"home.held":                {"我们持有的信息", "What we hold"},
	"home.held.note":           {"为保护您的信息，此处部分隐藏显示。下载副本可查看完整内容。", "Shown partly hidden for your protection; download a copy to see it in full."},
	"home.records":             {"记录", "Records"},
	"home.correct":             {"更正", "Correct"},
	"home.newvalue":            {"新的值", "New value"},
	"home.supplement":          {"补充信息", "Add information"},
	"home.field":               {"字段", "Field"},
	"home.consents":            {"我的授权", "My consents"},
	"home.consents.note":       {"这些用途基于您的同意，可随时撤回；撤回不影响购物、配送等基本服务。", "These uses rest on your consent, which you may withdraw at any time; withdrawing never affects shopping, delivery or your account."},
	"home.grant":               {"同意", "Agree"},
	"home.withdraw":            {"撤回同意", "Withdraw"},
	"home.sensitive":           {"单独同意使用敏感信息：", "Separately agree to the use of sensitive information: "},
	"home.requests":            {"我的申请", "My requests"},
	"home.actions":             {"行使权利", "Exercise your rights"},
	"home.copy":                {"下载我的信息副本", "Download a copy of my data"},
	"home.access":              {"查看信息处理情况", "See how my data is used"},
	"home.delete":              {"删除我的个人信息", "Delete my personal information"},
	"home.close":               {"注销账户", "Close my account"},
	"home.confirm":             {"我确认此操作", "I confirm"},
	"home.none":                {"暂无", "None"},
	"home.minor":               {"您未满 14 周岁，授权需由监护人办理。", "You are under 14: consent is given by your guardian."},
	"notice.title":             {"隐私政策", "Privacy notice"},
	"notice.link":              {"隐私政策", "Privacy notice"},
	"request.title":            {"申请详情", "Request"},
	"request.type":             {"类型", "Type"},
	"request.status":           {"状态", "Status"},
	"request.filed":            {"提交时间", "Filed"},
	"request.deadline":         {"处理期限", "Deadline"},
	"request.steps":            {"处理记录", "Steps"},
	"request.retained":         {"依法保留的信息", "Kept because the law requires it"},
	"request.retained.note":    {"以下信息依法需保留，已被锁定、不再用于任何用途，到期后删除：", "The following must be kept by law; it is locked, used for nothing, and deleted when the period ends:"},
	"request.until":            {"保留至", "until"},
	"request.refusal":          {"不予办理的理由", "Why we could not do this"},
	"request.download":         {"下载副本（ZIP）", "Download the copy (ZIP)"},
	"request.recipients":       {"通知下游系统", "Downstream systems told"},
	"request.back":             {"返回", "Back"},
	"type.access":              {"查阅", "Access"},
	"type.copy":                {"复制", "Copy"},
	"type.correct":             {"更正", "Correction"},
	"type.supplement":          {"补充", "Supplement"},
	"type.delete":              {"删除", "Deletion"},
	"type.withdraw":            {"撤回同意", "Withdraw consent"},
	"type.restrict":            {"限制处理", "Restriction"},
	"type.close_account":       {"注销账户", "Account closure"},
	"status.received":          {"已受理", "Received"},
	"status.review":            {"人工审核中", "Under review"},
	"status.in_progress":       {"处理中", "In progress"},
	"status.completed":         {"已完成", "Completed"},
	"status.refused":           {"不予办理", "Refused"},
	"consent.granted":          {"已同意", "Agreed"},
	"consent.refused":          {"已拒绝", "Refused"},
	"consent.withdrawn":        {"已撤回", "Withdrawn"},
	"consent.":                 {"未决定", "Not decided"},
	"done.granted":             {"已记录您的同意。", "Your consent is recorded."},
	"done.withdrawn":           {"已撤回，立即生效。", "Withdrawn, with immediate effect."},
	"error":                    {"无法完成", "Could not do that"},
	"error.invalid":            {"提交的内容有误。", "Something in the form is not right."},
	"error.forbidden":          {"没有权限。", "Not allowed."},
	"error.not_found":          {"找不到该内容。", "Not found."},
	"error.rate_limited":       {"操作过于频繁，请稍后再试。", "Too many attempts; please try again later."},
	"error.unavailable":        {"服务暂时不可用，请稍后再试。", "The service is unavailable; please try again later."},
	"error.internal":           {"系统错误，请稍后再试。", "Something went wrong; please try again later."},
	"error.sealed":             {"服务暂时不可用，请稍后再试。", "The service is unavailable; please try again later."},
	"error.unauthorized":       {"请先登录。", "Please sign in."},
	"purpose.account":          {"账户服务", "Your account"},
	"purpose.fulfilment":       {"订单履行", "Order fulfilment"},
	"purpose.customer-service": {"客户服务", "Customer service"},
	"purpose.marketing":        {"营销推广", "Marketing"},
	"purpose.personalisation":  {"个性化推荐", "Personal recommendations"},
	"purpose.analytics":        {"统计分析", "Analytics"},
	"purpose.risk-control":     {"风险控制", "Fraud and risk control"},
	"purpose.legal-obligation": {"法定义务", "Legal obligations"},
	"category.identity":        {"身份信息", "identity"},
	"category.contact":         {"联系方式", "contact details"},
	"category.account":         {"账户信息", "account"},
	"category.transaction":     {"交易信息", "transaction records"},
	"category.behaviour":       {"行为与位置信息", "behaviour and location"},
	"category.interaction":     {"互动信息", "interactions"},
	"category.biometric":       {"生物识别信息", "biometrics"},
	"category.other_sensitive": {"其他敏感信息", "other sensitive information"},
	"category.minors":          {"未成年人信息", "minors' information"},
	"record.order":             {"订单", "orders"},
	"record.payment":           {"支付", "payments"},
	"record.logistics":         {"物流", "deliveries"},
	"record.browsing":          {"浏览记录", "browsing"},
	"record.search":            {"搜索记录", "searches"},
	"record.ticket":            {"客服工单", "service tickets"},
	"record.review":            {"评价", "reviews"},
}

// trOr returns key's text in lang, or def when there is none.
func trOr(lang, key, def string) string {
	if _, ok := messages[key]; !ok {
		return def
	}
	return tr(lang, key)
}

// tr returns key's text in lang, or the key itself when missing.
func tr(lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if lang == "en" {
		return m[1]
	}
	return m[0]
}
