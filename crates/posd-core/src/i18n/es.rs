//! Español (es). Receipts print accents in code page 858 or 437; printers with ASCII only get
//! the letters without accents (`receipt::layout::printable`).

use super::Msg::{self, *};

pub(super) const fn text(m: Msg) -> &'static str {
    match m {
        TitleSale => "VENTA",
        TitleRefund => "DEVOLUCIÓN",
        TitleVoid => "ANULACIÓN",
        TitleReversal => "REVERSO",
        Reprint => "*** REIMPRESIÓN ***",
        ReprintPrinterFault => "REIMPRESIÓN — fallo de impresora",
        Date => "Fecha",
        Terminal => "Terminal",
        TxnRef => "Ref. trans.",
        Original => "Original",
        Method => "Medio",
        Channel => "Canal",
        Code => "Código",
        Card => "Tarjeta",
        Total => "TOTAL",
        TaxId => "ID fiscal:",
        RefUnavailable => "(referencia del recibo no disponible)",
        StatusApproved => "APROBADA",
        StatusApprovedOffline => "APROBADA SIN CONEXIÓN",
        StatusSettled => "LIQUIDADA",
        StatusDeclined => "RECHAZADA",
        StatusReversed => "REVERTIDA",
        StatusRefund => "DEVOLUCIÓN",
        StatusVoid => "ANULACIÓN",
        StatusVoided => "ANULADA",
        StatusRejected => "NO LIQUIDADA",
        StatusNotPaid => "NO PAGADA",
        StatusRefused => "DENEGADA",
        MethodPaymentCode => "Código de pago",
        MethodOfflineCode => "Código sin conexión",
        MethodMerchantCode => "QR del comercio",
        MethodCard => "Tarjeta",
        CopyMerchant => "COPIA COMERCIO",
        CopyCustomer => "COPIA CLIENTE",
        PaySlipTitle => "ESCANEE PARA PAGAR",
        PaySlipNotAReceipt => "Esto no es un recibo",
        ZTitle => "INFORME Z",
        ZBatch => "Lote",
        ZFrom => "Desde",
        ZTo => "Hasta",
        ZPrinted => "Impreso",
        ZEmpty => "Sin transacciones",
        ZSales => "Ventas",
        ZRefunds => "Devoluciones",
        ZVoids => "Anulaciones",
        ZNet => "NETO",
        ZApprovedOffline => "APROBADA, SIN LIQUIDAR",
        ZSettled => "APROBADA, LIQUIDADA",
        ZVoided => "APROBADA, ANULADA",
        ZRejected => "RECHAZADA AL LIQUIDAR",
        NoteHostRef => "Ref. plataforma",
        ChannelWechat => "WeChat Pay",
        ChannelAlipay => "Alipay",
        ChannelUnionpay => "UnionPay",
        ChannelEmvQr => "QR EMV",
        ChannelPlatform => "QR de la plataforma de pago",
        ChannelVisa => "Visa",
        ChannelMastercard => "Mastercard",
        ChannelAmex => "American Express",
        ChannelJcb => "JCB",
        ChannelDiscover => "Discover",

        ConsoleScanCode => "{amount} — escanee el código del cliente",
        ConsoleConfirming => "el cliente está confirmando en el teléfono…",
        ConsoleShowQr => "{amount} — el cliente escanea este código:",
        ConsolePrinter => "impresora",

        VfdTotal => "TOTAL",
        VfdShowCode => "Muestre su codigo",
        VfdProcessing => "Procesando...",
        VfdPleaseWait => "Espere, por favor",
        VfdPleaseConfirm => "Confirme en",
        VfdOnYourPhone => "su telefono",
        VfdScanQr => "Escanee el QR",
        VfdThankYou => "GRACIAS",
        VfdNotPaid => "NO PAGADO",
        VfdAskCashier => "Consulte al cajero",

        PrinterNotChecked => "aún sin comprobar",
        PrinterOk => "bien",
        PrinterNearEndSuffix => " — queda poco papel: tenga un rollo nuevo a mano",
        PrinterPaperNearEnd => {
            "queda poco papel — tenga un rollo nuevo a mano (sigue imprimiendo)"
        }
        PrinterPrinting => "imprimiendo",
        PrinterPaperOut => "sin papel — ponga un rollo nuevo",
        PrinterCoverOpen => "tapa abierta — cierre la tapa",
        PrinterOffline => {
            "fuera de línea — revise el papel y la tapa, o pulse una vez el botón de avance"
        }
        PrinterError => {
            "error (cuchilla, temperatura del cabezal o mecanismo) — apáguela y enciéndala"
        }
        PrinterNotAnswering => "no responde — revise la alimentación y el cable{detail}",
        PrinterUnreachable => {
            "inalcanzable — revise la alimentación, el cable y la dirección{detail}"
        }
        PrinterUnchecked => "no informa de su estado — imprime sin comprobar",
        PrinterOneJobWaits => "; 1 trabajo espera y se imprimirá solo",
        PrinterJobsWait => "; {n} trabajos esperan y se imprimirán solos",

        KeyReady => "Lista",
        KeyEnterAmount => "Teclee el importe",
        KeyAmount => "Importe {currency}",
        KeyMethods => "1 Leer 2 QR 3 Tarj.",
        KeyCancelling => "Cancelando...",
        KeyScanCode => "Lea el codigo",
        KeyPleaseWait => "Espere...",
        KeyMenu1 => "1 Devol. 2 Reimpr.",
        KeyMenu2 => "3 Cierre 4 Estado",
        KeyManagerPin => "PIN del encargado",
        KeyNoDecimals => "{currency} sin decimales",
        KeyMax => "Máx. {amount}",
        KeyOnlyDecimals => "Solo {n} decimales",
        KeyRefund => "Devolución",
        KeyReprint => "Reimpresión",
        KeyBatchClose => "Cierre de lote",
        KeyStatus => "Estado",
        KeyPinTooShort => "PIN demasiado corto",
        KeyCustomerConfirming => "Cliente confirmando",
        KeyCustomerScansQr => "Cliente lee el QR",
        KeyPaid => "Pagado",
        KeyRefunded => "Devuelto",
        KeyNoPrinter => "Sin impresora",
        KeyReprintQueued => "Reimpresión en cola",
        KeyNoReceiptYet => "Aún no hay recibo",
        KeyBatchClosed => "Lote {batch} cerrado",
        KeySeeStatus => "Vea posctl status",

        ResultApproved => "APROBADA",
        ResultApprovedOffline => "APROBADA SIN CONEXIÓN",
        ResultApprovedStored => "APROBADA (EN ESPERA)",
        ResultVoided => "ANULADA",
        ResultRefunded => "DEVUELTA",
        ResultDeclined => "RECHAZADA: {reason}",
        ResultNotPaid => "NO PAGADA: {reason}",
        ResultPending => "PENDIENTE: {reason}",
        NoticeBatchClosed => "Lote cerrado\nInforme Z impreso",
        NoticeRefundScanReceipt => "Devolución\nLea el recibo",
        NoticeScanReceiptQr => "Lea el código QR del recibo",
        NoticeNoSale => "No hay venta en curso",
        DoingAskPlatform => "consultando a la plataforma de pago",
        DoingAuthorizeCard => "autorizando la tarjeta",
        DoingWaitCustomerPay => "esperando el pago del cliente",
        DoingRefund => "devolviendo",

        RefuseBusy => "ya hay una venta en curso",
        RefuseNoSale => "no hay venta en curso",
        RefuseNotPositive => "el importe debe ser mayor que cero",
        RefuseOverLimit => "el importe {amount} supera el límite {limit}",
        RefuseCurrency => "la moneda {currency} no es la de este terminal",
        RefuseWrongPin => "PIN del encargado incorrecto",
        RefusePinLocked => "demasiados PIN incorrectos: bloqueado {secs} s",
        RefuseNoPin => {
            "no hay PIN de encargado ([manager] pin_hash): devoluciones y anulaciones desactivadas"
        }
        RefuseInFlight => {
            "{count} transacción(es) aún esperan al host ({ids}); cierre el lote cuando terminen"
        }
    }
}
